"""Choose between input views from dataset statistics (the seed's closing suggestion).

The measure is the participation ratio of the between-example variance over tokens,
``PR = (Σ_n v_n)² / (N · Σ_n v_n²)``, where ``v_n`` is the variance across examples of token n, summed over the
token's channels. An orthonormal transform keeps the total variance Σv the same; what it changes is how the
variance is spread. A dataset whose examples differ in one token (PR = 1/N raw) has that difference spread evenly
over every Fourier bin (PR ≈ 1), so the Fourier view wins; periodic data whose frequency shifts slightly between
examples varies at every raw position but only in a few bins near the carrier, so the raw view wins. The view
with the larger PR is chosen: its variation reaches more tokens, so attention that starts out spread over all
tokens sees more of it.

Variances are measured after centring and the candidate's transform, but *before* any z-scoring: z-scoring would
set every varying element's variance to 1 and make every profile look flat. Centring does not change a variance;
it is done (with the first batch's mean) only so the float32 FFT does not drown small differences in the
rounding error of a large common part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from rvperceiver.errors import InputError
from rvperceiver.views.stats import RunningMoments, participation_ratio
from rvperceiver.views.view import InputView, ViewConfig, _example_input

__all__ = ["AdaptiveChoice", "choose_view", "default_candidates", "participation_ratio"]


@dataclass
class AdaptiveChoice:
    """The chosen view and the numbers behind the choice (``statistics``: participation ratio per candidate)."""

    view: ViewConfig
    statistics: dict[str, float]
    chosen: str
    reason: str


def default_candidates(token_mode: str = "scalar", patch_size: int = 4) -> dict[str, ViewConfig]:
    """Raw (z-scored) vs Fourier (centred, packed rfft over the flat token axis, z-scored per bin)."""
    return {
        "raw": ViewConfig(token_mode=token_mode, patch_size=patch_size, transform="identity", pre_norm="zscore"),
        "fourier": ViewConfig(
            token_mode=token_mode, patch_size=patch_size, transform="rfft", pre_norm="centre", post_norm="zscore"
        ),
    }


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
) -> AdaptiveChoice:
    """Stream ``batches`` once and return the candidate whose between-example variance has the largest PR.

    ``batches`` yield tensors ``[B, *input_shape]`` (or ``(input, ...)`` tuples); a one-shot iterator is fine.
    Ties go to the earlier candidate. Raises InputError if a candidate sees no variance at all.
    """
    shape = tuple(int(s) for s in input_shape)
    chosen_candidates = dict(candidates) if candidates is not None else default_candidates(token_mode)
    if not chosen_candidates:
        raise InputError("choose_view: candidates is empty; give at least one name → ViewConfig")
    for name, cfg in chosen_candidates.items():
        if not isinstance(cfg, ViewConfig):
            raise InputError(f"choose_view: candidate {name!r} must be a ViewConfig, got {type(cfg).__name__}")

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
    return AdaptiveChoice(view=chosen_candidates[best], statistics=statistics, chosen=best, reason=reason)
