"""Run the seed's experiments: train a Perceiver over views × β1 × N × seeds and write the results.

``run_experiment(name, profile, out_dir)`` writes, under ``out_dir``:

* ``results.json`` — a list of records. Training runs have ``record="run"`` and at least ``task``,
  ``n_tokens``, ``view``, ``beta1``, ``seed``, ``test_nmse``, ``steps_to_nmse_0.1``, ``collapsed``; the theory
  has ``record="theory"``. Records of *other* experiments already in the file are kept, so pointing all three
  experiments at one folder gives one combined report.
* ``report.md`` — tables and a computed verdict for each claim R1–R5 (see :mod:`.report`).
* PNG plots — NMSE vs N per task, learning curves, attention maps of the image runs, the theory curves.

Every run goes through the project's trainer (:func:`rvperceiver.train.loop.train`, the same one the CLI uses)
with plain Adam: constant learning rate, β2 = 0.999, no clipping, no warm-up — the seed's setting, where β1 is
the only knob. The trainer seeds initialisation and data order from the run's seed, so the same seed gives the
same numbers on CPU. Test NMSE is measured on the whole held-out set every ``eval_every`` steps.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from rvperceiver.data.synthetic import (
    SyntheticTask,
    carrier_positions_1d,
    image_carrier_pixels,
)
from rvperceiver.errors import ConfigError
from rvperceiver.experiments import plots
from rvperceiver.experiments.report import claim_verdicts, render_report
from rvperceiver.experiments.tasks import (
    ADAPTIVE,
    EXPERIMENTS,
    Profile,
    RunSpec,
    get_profile,
    is_fourier_view,
    make_task,
    view_config,
)
from rvperceiver.experiments.theory import DEFAULT_SIZES, theory_table
from rvperceiver.model.config import PerceiverConfig
from rvperceiver.model.policy import Policy, PolicyConfig
from rvperceiver.train.config import OptimConfig, ScheduleConfig, TrainConfig
from rvperceiver.train.loop import CollapseWarning, train
from rvperceiver.train.metrics import collapse_verdict
from rvperceiver.utils import atomic_write_text
from rvperceiver.views.adaptive import AdaptiveChoice, choose_view
from rvperceiver.views.stats import RunningMoments, participation_ratio
from rvperceiver.views.view import ViewConfig

__all__ = ["run_experiment", "main_experiment", "demo", "train_run", "EVAL_CHUNK"]

# Examples per forward pass when evaluating or computing statistics (bounds memory at large N).
EVAL_CHUNK = 64
BETA2 = 0.999
DEMO_RUNS = (
    ("raw+fourier-pos", 0.9),
    ("raw+fourier-pos", 0.999),
    ("fft", 0.9),
    ("centre-fft", 0.9),
    (ADAPTIVE, 0.9),
)
THEORY_SIZES = {"test": (16, 64, 256), "quick": DEFAULT_SIZES, "full": DEFAULT_SIZES}


def _chunks(x: torch.Tensor, size: int = EVAL_CHUNK) -> list[torch.Tensor]:
    return list(torch.split(x, size))


def _carrier_tokens(task: SyntheticTask) -> list[int]:
    """Flat scalar-token indices of the tokens that carry the target (tiny-difference tasks only)."""
    meta = task.meta
    if meta["task"] == "tiny-difference":
        return [int(p) for p in carrier_positions_1d(meta["n_tokens"], meta["k"])]
    if meta["task"] == "tiny-difference-image":
        size = meta["image_size"]
        pixels = image_carrier_pixels(meta["seed"], image_size=size, k=meta["k"])
        return [(r * size + c) * 3 + ch for r, c in pixels for ch in range(3)]
    return []


@torch.no_grad()
def _view_participation_ratio(policy: Policy, inputs: torch.Tensor) -> float:
    """Participation ratio of the between-example variance of what the backbone sees (after every norm)."""
    moments: RunningMoments | None = None
    for chunk in _chunks(inputs):
        tokens = policy.view(chunk)
        if moments is None:
            moments = RunningMoments(tuple(tokens.shape[1:]))
        moments.update(tokens)
    assert moments is not None
    return participation_ratio(moments.var.sum(dim=-1))


@torch.no_grad()
def _attention(policy: Policy, inputs: torch.Tensor) -> np.ndarray:
    """Mean first cross-attention weight per token over a few examples, heads and latents: ``[N]``."""
    policy.eval()
    maps = policy.backbone.attention_maps(policy.view(inputs))  # [B, heads, latents, N]
    policy.train()
    return maps.mean(dim=(0, 1, 2)).double().cpu().numpy()


def train_config(spec: RunSpec, seed: int, view: ViewConfig, task: SyntheticTask, profile: Profile, device: str) -> TrainConfig:
    """The trainer's config for one run: plain constant-lr Adam, everything in memory, nothing written."""
    perceiver = PerceiverConfig(
        position="fourier",
        output_steps=task.target_shape[0],
        output_channels=task.target_shape[1],
        **profile.model,
    )
    return TrainConfig(
        policy=PolicyConfig(view=view, backbone="perceiver", perceiver=perceiver, target_norm="zscore"),
        optim=OptimConfig(name="adam", lr=profile.lr, betas=(spec.beta1, BETA2), grad_clip=None),
        schedule=ScheduleConfig(warmup_steps=0, min_lr_ratio=1.0),
        steps=profile.steps,
        batch_size=profile.batch_size,
        eval_every=profile.eval_every,
        eval_batches=0,
        checkpoint_every=profile.steps,
        log_every=profile.steps,
        seed=seed,
        device=device,
        amp=False,
        out_dir="",
        tensorboard=False,
    )


def train_run(
    spec: RunSpec,
    seed: int,
    task: SyntheticTask,
    choice: AdaptiveChoice,
    profile: Profile,
    device: str = "cpu",
    progress_label: str | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Train one policy with :func:`rvperceiver.train.loop.train`; return its record and mean attention per token.

    ``progress_label`` shows a progress bar (steps, rate, ETA) with that label on stderr while it trains.
    """
    from rvperceiver.progress import bar

    started = time.perf_counter()
    view = choice.view if spec.view == ADAPTIVE else view_config(spec.view)
    config = train_config(spec, seed, view, task, profile, device)
    steps_bar = bar(desc=progress_label or "", total=config.steps, unit="step", enabled=progress_label is not None,
                    leave=False)
    with warnings.catch_warnings(), steps_bar:
        # Collapse is one of the outcomes measured here, recorded per run; the trainer's advice is noise.
        warnings.simplefilter("ignore", CollapseWarning)
        result = train(
            config,
            TensorDataset(task.train_inputs, task.train_targets),
            TensorDataset(task.test_inputs, task.test_targets),
            out_dir="",
            progress=False,
            on_step=lambda step, loss: steps_bar.update(1),
        )
    policy = result.policy
    train_losses = result.train_losses
    curve = []
    previous = 0
    for point in result.evals:
        window = train_losses[previous : point["step"]]
        previous = point["step"]
        curve.append(
            {
                "step": point["step"],
                "test_nmse": point["nmse"],
                "test_spread": point["spread"],
                "train_loss": float(np.mean(window)) if window else math.nan,
            }
        )
    steps_to_threshold = next((p["step"] for p in curve if p["test_nmse"] < 0.1), None)
    test_x = task.test_inputs.to(next(policy.parameters()).device)
    final_nmse, final_spread = curve[-1]["test_nmse"], curve[-1]["test_spread"]
    verdict = collapse_verdict(final_nmse, final_spread)
    train_x = task.train_inputs.to(test_x.device)
    attention = _attention(policy, test_x[:8])
    carriers = _carrier_tokens(task)
    on_carrier = None
    if carriers and not is_fourier_view(view):
        on_carrier = float(attention[carriers].sum() / (len(carriers) / attention.size))
    record = {
        "record": "run",
        "task": spec.task,
        "n_tokens": spec.n_tokens,
        "view": spec.view,
        "view_config": view.to_dict(),
        "beta1": spec.beta1,
        "beta2": BETA2,
        "seed": seed,
        "profile": profile.name,
        "test_nmse": final_nmse,
        "test_spread": final_spread,
        "verdict": verdict,
        "collapsed": verdict == "collapsed",
        "steps_to_nmse_0.1": steps_to_threshold,
        "best_test_nmse": min(p["test_nmse"] for p in curve),
        "curve": curve,
        "view_participation_ratio": _view_participation_ratio(policy, train_x),
        "adaptive_statistics": dict(choice.statistics),
        "adaptive_chosen": choice.chosen,
        "attention_on_carrier": on_carrier,
        "steps": profile.steps,
        "batch_size": profile.batch_size,
        "lr": profile.lr,
        "num_train": task.train_inputs.shape[0],
        "num_test": task.test_inputs.shape[0],
        "model": dict(profile.model),
        "parameters": sum(p.numel() for p in policy.parameters()),
        "device": device,
        "wall_time_s": time.perf_counter() - started,
    }
    return record, attention


def _setup_lines(name: str, profile: Profile, seeds: tuple[int, ...], grid: tuple[RunSpec, ...]) -> list[str]:
    if name == "theory":
        return ["Closed form of the seed's DFT algebra next to numpy's FFT (float64).", ""]
    tasks = sorted({s.task for s in grid})
    return [
        f"Profile **{profile.name}**: {len(grid)} grid points × seeds {list(seeds)}; tasks {tasks}.",
        f"Training: plain Adam (lr {profile.lr}, β2 {BETA2}, constant, no clipping), {profile.steps} steps, batch "
        f"{profile.batch_size}, {profile.num_train} train / {profile.num_test} held-out test examples, test NMSE every "
        f"{profile.eval_every} steps. Perceiver: {profile.model}, Fourier position features on every view.",
        "Collapse verdict: 'collapsed' = NMSE > 0.9 and prediction spread < 0.1 of the targets'; 'learning' = NMSE < 0.5.",
        "",
    ]


def _merge_records(path: Path, experiment: str, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records already in ``path`` from other experiments, followed by ``new``."""
    kept: list[dict[str, Any]] = []
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: existing results.json is not valid JSON ({err}); move it away") from err
        if isinstance(previous, list):
            kept = [r for r in previous if isinstance(r, dict) and r.get("experiment") != experiment]
    return kept + new


def _write_outputs(out: Path, name: str, profile: Profile, seeds: tuple[int, ...], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results_path = out / "results.json"
    all_records = _merge_records(results_path, name, records)
    atomic_write_text(results_path, json.dumps(all_records, indent=1, allow_nan=True))
    experiments = sorted({r["experiment"] for r in all_records})
    title = f"Seed experiments ({', '.join(experiments)}; profile {profile.name})"
    setup = _setup_lines(name, profile, seeds, profile.grid(name) if name != "theory" else ())
    (out / "report.md").write_text(render_report(all_records, title, setup))
    runs = [r for r in records if r["record"] == "run"]
    for task in sorted({r["task"] for r in runs}):
        plots.plot_nmse_vs_n(runs, task, out / f"nmse_vs_n_{task}.png")
        plots.plot_learning_curves(runs, task, out / f"learning_curves_{task}.png")
    theory = [r for r in records if r["record"] == "theory"]
    if theory:
        plots.plot_theory(theory, out / "theory.png")
    return all_records


def run_experiment(
    name: str,
    profile: str = "quick",
    out_dir: str | Path = "experiment-results",
    seeds: list[int] | tuple[int, ...] | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run one experiment (``tiny-difference``, ``frequency-shift`` or ``theory``) and write its outputs.

    Returns this experiment's records (``results.json`` may also hold other experiments' records).
    ``progress`` prints one line per finished run.
    """
    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    prof = get_profile(profile)
    run_seeds = tuple(int(s) for s in seeds) if seeds else prof.seeds
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    if name == "theory":
        records = [{"record": "theory", "experiment": name, **r} for r in theory_table(THEORY_SIZES[prof.name])]
        _write_outputs(out, name, prof, run_seeds, records)
        return records

    grid = prof.grid(name)
    records: list[dict[str, Any]] = []
    datasets = sorted({(spec.task, spec.n_tokens) for spec in grid}, key=lambda tn: (tn[1], tn[0]))
    total = len(grid) * len(run_seeds)
    for seed in run_seeds:
        for task_name, n_tokens in datasets:
            task = make_task(task_name, n_tokens, seed, prof.num_train, prof.num_test)
            choice = choose_view(_chunks(task.train_inputs), task.input_shape)
            for spec in (s for s in grid if (s.task, s.n_tokens) == (task_name, n_tokens)):
                label = f"[{len(records) + 1}/{total}] {spec.task} N={spec.n_tokens} {spec.view} β1={spec.beta1} seed {seed}"
                record, attention = train_run(spec, seed, task, choice, prof, device, label if progress else None)
                record["experiment"] = name
                records.append(record)
                if progress:
                    print(
                        f"[{len(records)}/{total}] {spec.task} N={spec.n_tokens} {spec.view} β1={spec.beta1} "
                        f"seed {seed}: test NMSE {record['test_nmse']:.3f} ({record['verdict']}), "
                        f"{record['wall_time_s']:.1f} s",
                        flush=True,
                    )
                if task_name == "tiny-difference-image":
                    _plot_image_attention(out, task, record, attention)
    _write_outputs(out, name, prof, run_seeds, records)
    return records


def _plot_image_attention(out: Path, task: SyntheticTask, record: dict[str, Any], attention: np.ndarray) -> None:
    size = task.meta["image_size"]
    per_pixel = attention.reshape(size, size, 3).sum(axis=-1)
    spectral = is_fourier_view(ViewConfig(**record["view_config"]))
    what = "over packed rfft coefficients, laid out as the image" if spectral else "over the image"
    title = (
        f"{record['view']}, β1={record['beta1']}, seed {record['seed']}: cross-attention {what}\n"
        f"test NMSE {record['test_nmse']:.3f} ({record['verdict']})"
    )
    pixels = image_carrier_pixels(task.meta["seed"], image_size=size, k=task.meta["k"])
    image = task.test_inputs[0, 0].numpy()
    name = f"attention_{record['task']}_{record['view']}_b{record['beta1']}_s{record['seed']}.png"
    plots.plot_attention_map(per_pixel, title, out / name, marks=pixels, image=image)


def main_experiment(
    name: str, profile: str = "quick", out: str | Path = "experiment-results", seeds: list[int] | None = None, device: str = "cpu"
) -> int:
    """CLI entry: run, then print where the outputs are and the claim verdicts. Returns an exit code."""
    started = time.perf_counter()
    run_experiment(name, profile, out, seeds, device, progress=True)
    out_path = Path(out)
    records = json.loads((out_path / "results.json").read_text())
    print(f"{name} ({profile}) finished in {time.perf_counter() - started:.1f} s; results in {out_path}/")
    if any(r.get("record") == "run" for r in records):
        for verdict in claim_verdicts(records):
            print(f"  {verdict.claim} {verdict.statement}: {verdict.status}")
    print(f"  report: {out_path / 'report.md'}")
    return 0


def demo(
    out_dir: str | Path = "demo-results", n_tokens: int = 12288, profile: str = "quick", seed: int = 0,
    progress: bool = False,
) -> str:
    """A small, fast comparison (about a minute on 2 idle CPU cores): raw tokens (with Adam β1 = 0.9 and the
    seed's β1 = 0.999) vs spectral views and the adaptive choice on the tiny-difference task at one N (default
    12,288, one 64×64×3 frame's worth of scalar tokens), with the quick profile's model and budget. Returns the
    comparison table as text (also written to ``demo.md`` and drawn as ``demo.png`` beside ``results.json``).
    ``progress`` shows a bar per row on stderr."""
    prof = get_profile(profile)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = make_task("tiny-difference", n_tokens, seed, prof.num_train, prof.num_test)
    choice = choose_view(_chunks(task.train_inputs), task.input_shape)
    lines = [
        f"Tiny-difference task: N = {n_tokens} tokens, one token carries the target, the rest is a shared "
        f"background + noise. {prof.steps} Adam steps, held-out test set.",
        f"Adaptive choice: {choice.chosen} ({', '.join(f'{k} PR {v:.4f}' for k, v in choice.statistics.items())})",
        "",
        f"{'view':<18} {'β1':>6} {'test NMSE':>10} {'steps to 0.1':>13} {'verdict':>10} {'time (s)':>9}",
    ]
    records = []
    for number, (view, beta1) in enumerate(DEMO_RUNS, start=1):
        label = f"demo row {number}/{len(DEMO_RUNS)}: {view} β1={beta1}" if progress else None
        record, _ = train_run(RunSpec("tiny-difference", n_tokens, view, beta1), seed, task, choice, prof,
                              progress_label=label)
        record["experiment"] = "demo"
        records.append(record)
        steps = record["steps_to_nmse_0.1"]
        lines.append(
            f"{view:<18} {beta1:>6} {record['test_nmse']:>10.3f} {('never' if steps is None else str(steps)):>13} "
            f"{record['verdict']:>10} {record['wall_time_s']:>9.1f}"
        )
    lines.append("(NMSE 1.0 = predicting the mean; 'collapsed' = the seed's symptom)")
    table = "\n".join(lines)
    atomic_write_text(out / "results.json", json.dumps(records, indent=1, ensure_ascii=False))
    atomic_write_text(out / "demo.md", table + "\n")
    from rvperceiver.plotting import plot_demo_table

    plot_demo_table(records, lines[0], out / "demo.png")
    return table
