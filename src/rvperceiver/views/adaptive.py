"""Choose between input views from dataset statistics (the seed's closing suggestion, and a rule that looks at
the target).

Three rules, each returning an :class:`AdaptiveChoice` with the numbers behind it:

``participation`` (the seed's rule)
    The participation ratio of the between-example variance over tokens,
    ``PR = (Σ_n v_n)² / (N · Σ_n v_n²)``, where ``v_n`` is the variance across examples of token n, summed over
    the token's channels. An orthonormal transform keeps the total variance Σv; what it changes is how the
    variance is spread. The view with the larger PR is chosen: its variation reaches more tokens. Variances are
    measured after centring and the candidate's transform, but *before* any z-scoring (z-scoring would make
    every profile flat). The rule ignores the target: it measures how spread the *input's* differences are,
    not whether the *target* can be read from them.
``target-block`` and ``target-block2`` (rules that use the target)
    What a Perceiver can use early in training is what its latents can pool: cross-attention starts out nearly
    uniform over the tokens, and the position features let each latent lean towards a region. So each candidate
    view (with its own normalisation, as the model will see it) is cut into ``blocks`` contiguous runs of tokens
    (one per latent by default); the features are the block means (``target-block``) or the block means and
    the block means of the squared tokens (``target-block2``, which also sees differences that move energy
    without moving a mean). The score is the summed squared covariance of the features with the z-scored
    target, ``S = Σ_j Σ_d cov(feature_j, y_d)²``, compared with the same score after shuffling the targets
    (``permutations`` times): ``ratio = S / mean(S_null)`` and a permutation p-value. A view is *findable* when
    ``p ≤ alpha``; the findable view with the larger ratio is chosen, and when neither is findable the answer
    is ``neither`` (the choice then returns the ``dual`` view, raw and Fourier side by side, so training can
    still proceed without betting on one).

Which rule is the default (``DEFAULT_RULE``, used by ``view_choice=adaptive``) is decided by the seed-claims
study's confusion table (README, "The seed's claims").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from rvperceiver.errors import InputError
from rvperceiver.views.stats import RunningMoments, participation_ratio
from rvperceiver.views.view import InputView, ViewConfig, _example_input

__all__ = [
    "AdaptiveChoice",
    "choose_view",
    "default_candidates",
    "dual_view",
    "participation_ratio",
    "target_block_score",
    "RULES",
    "DEFAULT_RULE",
    "NEITHER",
]

RULES: tuple[str, ...] = ("participation", "target-block", "target-block2")
DEFAULT_RULE = "target-block"  # the rule right on the most problems of the study (README, "The seed's claims")
NEITHER = "neither"
DEFAULT_BLOCKS = 16
DEFAULT_PERMUTATIONS = 199
DEFAULT_ALPHA = 0.01


@dataclass
class AdaptiveChoice:
    """The chosen view and the numbers behind the choice.

    ``statistics``: the rule's number per candidate (participation ratio, or the target score's ratio to its
    shuffled-target null); ``chosen``: a candidate name or ``"neither"``; ``details``: per-candidate extras
    (score, null mean, p-value) for the target rules.
    """

    view: ViewConfig
    statistics: dict[str, float]
    chosen: str
    reason: str
    rule: str = "participation"
    details: dict[str, dict[str, float]] = field(default_factory=dict)


def default_candidates(token_mode: str = "scalar", patch_size: int = 4) -> dict[str, ViewConfig]:
    """Raw (z-scored) vs Fourier (centred, packed rfft over the flat token axis, z-scored per bin)."""
    return {
        "raw": ViewConfig(token_mode=token_mode, patch_size=patch_size, transform="identity", pre_norm="zscore"),
        "fourier": ViewConfig(
            token_mode=token_mode, patch_size=patch_size, transform="rfft", pre_norm="centre", post_norm="zscore"
        ),
    }


def dual_view(token_mode: str = "scalar", patch_size: int = 4, transform_axes: str = "flat") -> ViewConfig:
    """Raw and Fourier together: centre → (sample, packed rfft coefficient) per token → z-score per element.

    Its two channels per scalar token are exactly the ``raw`` candidate (z-scored samples) and the ``fourier``
    candidate (centre → rfft → per-bin z-score), so a model trained on it need not choose between them.
    """
    return ViewConfig(
        token_mode=token_mode,
        patch_size=patch_size,
        transform="dual",
        transform_axes=transform_axes,
        pre_norm="centre",
        post_norm="zscore",
    )


def _probe(config: ViewConfig, input_shape: tuple[int, ...]) -> InputView:
    """A view that centres (with a mean set later) and transforms like ``config``, without any scaling."""
    probe = InputView(replace(config, pre_norm="centre", post_norm="none"), input_shape)
    probe.fitted.fill_(True)
    return probe


@torch.no_grad()
def choose_view(
    batches: Iterable[Any],
    input_shape: tuple[int, ...] | list[int],
    token_mode: str = "scalar",
    candidates: Mapping[str, ViewConfig] | None = None,
    rule: str | None = None,
    *,
    blocks: int = DEFAULT_BLOCKS,
    permutations: int = DEFAULT_PERMUTATIONS,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> AdaptiveChoice:
    """Choose a view for the data in ``batches`` by ``rule`` (default :data:`DEFAULT_RULE`; see the module docstring).

    ``batches`` yield tensors ``[B, *input_shape]`` or ``(input, target, ...)`` tuples. ``participation`` streams
    them once (a one-shot iterator is fine; targets are ignored); the target rules need ``(input, target)``
    tuples and a re-iterable (a list or a DataLoader), because each candidate view is fitted before it is scored.
    Ties go to the earlier candidate. Raises InputError if a candidate sees no variance at all.
    """
    rule = DEFAULT_RULE if rule is None else rule
    if rule not in RULES:
        raise InputError(f"choose_view: unknown rule {rule!r}; expected one of {', '.join(RULES)}")
    shape = tuple(int(s) for s in input_shape)
    chosen_candidates = dict(candidates) if candidates is not None else default_candidates(token_mode)
    if not chosen_candidates:
        raise InputError("choose_view: candidates is empty; give at least one name → ViewConfig")
    for name, cfg in chosen_candidates.items():
        if not isinstance(cfg, ViewConfig):
            raise InputError(f"choose_view: candidate {name!r} must be a ViewConfig, got {type(cfg).__name__}")
    if rule == "participation":
        return _participation_choice(batches, shape, chosen_candidates)
    return _target_choice(batches, shape, chosen_candidates, rule, blocks, permutations, alpha, seed, token_mode)


def _participation_choice(
    batches: Iterable[Any], shape: tuple[int, ...], chosen_candidates: dict[str, ViewConfig]
) -> AdaptiveChoice:
    probes = {name: _probe(cfg, shape) for name, cfg in chosen_candidates.items()}
    moments = {name: RunningMoments((p.num_tokens, p.out_channels)) for name, p in probes.items()}
    shifted = False
    for item in batches:
        x = _example_input(item)
        if not shifted:
            for probe in probes.values():
                probe.to(x.device)
        x = x.to(probes[next(iter(probes))].pre_mean.device)
        for name, probe in probes.items():
            if not shifted:
                probe.pre_mean.copy_(probe.tokens(x).mean(dim=0))
            moments[name].update(probe(x))
        shifted = True
    if not shifted:
        raise InputError("choose_view got no examples: the iterable of batches was empty")

    statistics: dict[str, float] = {}
    tokens: dict[str, int] = {}
    for name, m in moments.items():
        per_token = m.var.sum(dim=-1)
        try:
            statistics[name] = participation_ratio(per_token)
        except InputError as err:
            raise InputError(f"choose_view: candidate {name!r}: {err}") from err
        tokens[name] = int(per_token.numel())

    names = list(statistics)
    best = max(names, key=lambda k: (statistics[k], -names.index(k)))
    others = ", ".join(
        f"{k} {statistics[k]:.4g} (≈{statistics[k] * tokens[k]:.1f} of {tokens[k]} tokens)" for k in names if k != best
    )
    reason = (
        f"{best} has the largest participation ratio of the between-example variance, {statistics[best]:.4g} "
        f"(≈{statistics[best] * tokens[best]:.1f} of {tokens[best]} tokens carry it)"
        + (f", against {others}" if others else "")
        + "; the view that spreads the differences between examples over more tokens was chosen"
    )
    return AdaptiveChoice(view=chosen_candidates[best], statistics=statistics, chosen=best, reason=reason, rule="participation")


def _block_features(tokens: torch.Tensor, blocks: int, squares: bool) -> torch.Tensor:
    """``[B, N, c]`` tokens → ``[B, F]``: the mean of each of ``blocks`` contiguous runs of tokens, per channel
    (and of the squared tokens when ``squares``), in float64."""
    t = tokens.to(torch.float64)
    parts = [p.mean(dim=1) for p in torch.tensor_split(t, min(blocks, t.shape[1]), dim=1)]
    features = torch.cat(parts, dim=-1)
    if squares:
        features = torch.cat([features, *[p.square().mean(dim=1) for p in torch.tensor_split(t, min(blocks, t.shape[1]), dim=1)]], dim=-1)
    return features


def target_block_score(
    features: torch.Tensor, targets: torch.Tensor, permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0
) -> dict[str, float]:
    """Summed squared covariance of ``features [M, F]`` with z-scored ``targets [M, ...]``, against shuffled targets.

    Returns ``score``, ``null_mean`` (mean score over ``permutations`` shuffles of the targets' rows),
    ``ratio = score / null_mean`` and ``p_value = (1 + #{null ≥ score}) / (1 + permutations)``. Target columns
    that do not vary are dropped; if none varies the score is 0 and the p-value 1.
    """
    x = features.to(torch.float64)
    y = targets.reshape(targets.shape[0], -1).to(torch.float64)
    if x.shape[0] != y.shape[0] or x.shape[0] < 3:
        raise InputError(
            f"target_block_score: expected the same number (≥ 3) of feature and target rows, got {x.shape[0]} and {y.shape[0]}"
        )
    if permutations < 1:
        raise InputError(f"target_block_score: permutations must be ≥ 1, got {permutations}")
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std = y.std(dim=0, unbiased=False)
    y = y[:, std > 0] / std[std > 0]
    if y.shape[1] == 0:
        return {"score": 0.0, "null_mean": 0.0, "ratio": 0.0, "p_value": 1.0}
    m = x.shape[0]

    def score(yy: torch.Tensor) -> torch.Tensor:
        return ((x.T @ yy) / m).square().sum()

    observed = float(score(y))
    generator = torch.Generator().manual_seed(int(seed))
    null = torch.stack([score(y[torch.randperm(m, generator=generator)]) for _ in range(permutations)])
    null_mean = float(null.mean())
    exceed = int((null >= observed).sum())
    return {
        "score": observed,
        "null_mean": null_mean,
        "ratio": observed / null_mean if null_mean > 0 else 0.0,
        "p_value": (1 + exceed) / (1 + permutations),
    }


def _split_pair(item: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise InputError(
            "choose_view: a target rule needs (input, target) batches, got bare inputs; pass (input, target) pairs "
            "or rule='participation'"
        )
    return _example_input(item), torch.as_tensor(item[1])


class _Inputs:
    """A re-iterable view of ``(input, target)`` batches that yields the inputs only (for ``InputView.fit``)."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[torch.Tensor]:
        seen = False
        for item in self.batches:
            seen = True
            yield _split_pair(item)[0]
        if not seen:
            raise InputError("choose_view got no examples: the iterable of batches was empty")


def _target_choice(
    batches: Iterable[Any],
    shape: tuple[int, ...],
    chosen_candidates: dict[str, ViewConfig],
    rule: str,
    blocks: int,
    permutations: int,
    alpha: float,
    seed: int,
    token_mode: str,
) -> AdaptiveChoice:
    if isinstance(batches, Iterator):
        raise InputError(
            f"choose_view: rule {rule!r} fits each candidate view before scoring it, so it needs a re-iterable of "
            "batches (a list or a DataLoader), not a one-shot iterator"
        )
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 1:
        raise InputError(f"choose_view: blocks must be a positive integer, got {blocks!r}")
    if not 0 < alpha < 1:
        raise InputError(f"choose_view: alpha must be in (0, 1), got {alpha!r}")
    details: dict[str, dict[str, float]] = {}
    for name, cfg in chosen_candidates.items():
        # Streamed: the view's statistics take one or two passes over ``batches``, the block features one more;
        # only the block means (examples × blocks × channels) and the targets are kept.
        view = InputView(cfg, shape)
        inputs = _Inputs(batches)
        try:
            view.fit(inputs)
        except InputError as err:
            raise InputError(f"choose_view: candidate {name!r}: {err}") from err
        feats, targets = [], []
        for item in batches:
            x, y = _split_pair(item)
            feats.append(_block_features(view(x.to(view.pre_mean.device)), blocks, rule == "target-block2").cpu())
            targets.append(y.reshape(y.shape[0], -1))
        details[name] = target_block_score(torch.cat(feats), torch.cat(targets), permutations, seed)
    statistics = {name: d["ratio"] for name, d in details.items()}
    findable = [name for name in details if details[name]["p_value"] <= alpha]
    summary = ", ".join(
        f"{name} {d['ratio']:.3g}× its shuffled-target null (p {d['p_value']:.3g})" for name, d in details.items()
    )
    if not findable:
        reason = (
            f"neither view is findable by rule {rule}: {summary}; no candidate beats its null at p ≤ {alpha}, so "
            "the dual view (raw and Fourier side by side) is returned"
        )
        first = next(iter(chosen_candidates.values()))
        view_cfg = dual_view(token_mode, first.patch_size, first.transform_axes)
        return AdaptiveChoice(view=view_cfg, statistics=statistics, chosen=NEITHER, reason=reason, rule=rule, details=details)
    names = list(details)
    best = max(findable, key=lambda k: (details[k]["ratio"], -names.index(k)))
    reason = (
        f"{best} has the largest target score among the findable views by rule {rule} ({summary}); block means over "
        f"{blocks} contiguous token runs, p ≤ {alpha} against {permutations} shuffles of the targets"
    )
    return AdaptiveChoice(
        view=chosen_candidates[best], statistics=statistics, chosen=best, reason=reason, rule=rule, details=details
    )
