"""Run the seed-claims study: train every cell of a profile over its seeds and write the results.

``run_experiment(name, profile, out_dir)`` writes, under ``out_dir``:

* ``runs-<experiment>.jsonl`` — one line per finished run, appended as each run ends. A killed study started
  again with the same command skips the runs already there (training is deterministic per seed, so a run
  repeated would give the same numbers); delete the file to start afresh.
* ``results.json`` — a list of records: ``record="run"`` (one per run: the cell's factors, seed, final test NMSE,
  ``learned``, ``escape_step``, the learning curve, each view-choice rule's pick on that dataset),
  ``record="cell"`` (per cell: view, factors, ``k``/``n`` learned, the Clopper–Pearson interval bounds, escape-step
  median), ``record="verdict"`` (R1–R5, with the cells each rests on), ``record="confusion"`` (which view wins per
  problem and what each rule picks) and ``record="theory"``. Records of *other* experiments already in the file
  are kept, so pointing all three experiments at one folder gives one combined report.
* ``report.md`` and PNG plots (k/n learned with intervals against N per view, escape steps, the theory curves).

Every run goes through the project's trainer (:func:`rvperceiver.train.loop.train`, the same one the CLI uses)
with plain Adam: constant learning rate, β2 = 0.999, no clipping, no warm-up — the seed's setting. Long runs
are trained in segments through the trainer's exact resume (bit-identical to one call), so a run can stop once
its test NMSE is below ``profile.stop_below``: a run that has left the plateau need not spend the rest of its
budget proving it. Test NMSE is measured on the whole held-out set every ``eval_every`` steps.

With ``workers > 1`` runs go to that many processes, each limited to one intra-op thread: on 2 cores shared
with other jobs, two threads per process spent most of their time waiting on each other (a 200-step run at
N = 256 took 30 s with 2 threads and 3 s with 1, measured under load on this machine).
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from rvperceiver.data.synthetic import SyntheticTask
from rvperceiver.errors import ConfigError
from rvperceiver.experiments import plots
from rvperceiver.experiments.report import (
    cell_records,
    claim_verdicts,
    confusion_records,
    render_report,
)
from rvperceiver.experiments.tasks import (
    ADAPTIVE,
    EXPERIMENTS,
    Cell,
    Profile,
    check_seeds,
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
from rvperceiver.views.adaptive import RULES, AdaptiveChoice, choose_view, default_candidates
from rvperceiver.views.view import ViewConfig

__all__ = [
    "run_experiment",
    "main_experiment",
    "demo",
    "train_run",
    "rule_picks",
    "window_rule_picks",
    "EVAL_CHUNK",
    "LEARNED_NMSE",
]

# Examples per forward pass when evaluating or computing statistics (bounds memory at large N).
EVAL_CHUNK = 64
BETA2 = 0.999
LEARNED_NMSE = 0.5  # a run "learned" when its final test NMSE is below this (the modes sit near 0.01 and 1.05)
DEMO_RUNS = (
    ("raw+fourier-pos", 0.9),
    ("raw+fourier-pos", 0.999),
    ("fft", 0.9),
    ("centre-fft", 0.9),
    (ADAPTIVE, 0.9),
)
THEORY_SIZES = {"test": (16, 64, 256), "quick": DEFAULT_SIZES, "standard": DEFAULT_SIZES, "full": DEFAULT_SIZES}
_SUMMARY_EVERY = 20  # rewrite results.json / report.md after this many finished runs (partial results readable)


def _chunks(x: torch.Tensor, size: int = EVAL_CHUNK) -> list[torch.Tensor]:
    return list(torch.split(x, size))


def _pairs(task: SyntheticTask) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(zip(_chunks(task.train_inputs), _chunks(task.train_targets)))


def rule_picks(task: SyntheticTask, axes: str = "flat", blocks: int = 16) -> dict[str, dict[str, Any]]:
    """Every view-choice rule's answer on a dataset's training split (candidates with the given transform axes)."""
    candidates = {name: ViewConfig(**{**cfg.to_dict(), "transform_axes": axes}) for name, cfg in default_candidates().items()}
    picks: dict[str, dict[str, Any]] = {}
    for rule in RULES:
        choice = choose_view(_pairs(task), task.input_shape, candidates=candidates, rule=rule, blocks=blocks)
        picks[rule] = {
            "chosen": choice.chosen,
            "statistics": dict(choice.statistics),
            "p_values": {k: d["p_value"] for k, d in choice.details.items()},
        }
    return picks


def window_rule_picks(
    path: str | Path, t_obs: int = 2, t_pred: int = 8, max_samples: int = 1024, blocks: int = 16
) -> dict[str, Any]:
    """Every view-choice rule's answer on the training windows of a demo file (the behaviour-cloning tiers).

    ``max_samples`` windows, evenly spaced over the training split, bound the cost (0 = all)."""
    from torch.utils.data import DataLoader, Subset

    from rvperceiver.data.loading import load_windows

    train = load_windows(path, t_obs=t_obs, t_pred=t_pred).train
    size = len(train)
    chosen = range(size) if not 0 < max_samples < size else np.linspace(0, size - 1, max_samples).round().astype(int).tolist()
    loader = DataLoader(Subset(train, list(chosen)), batch_size=EVAL_CHUNK, shuffle=False)
    picks: dict[str, Any] = {"path": str(path), "windows": len(chosen), "frame_shape": list(train.frame_shape)}
    for rule in RULES:
        choice = choose_view(loader, train.frame_shape, rule=rule, blocks=blocks)
        picks[rule] = {"chosen": choice.chosen, "statistics": dict(choice.statistics),
                       "p_values": {k: d["p_value"] for k, d in choice.details.items()}}
    return picks


@functools.lru_cache(maxsize=4)
def _dataset(dataset: tuple, seed: int, num_train: int, num_test: int) -> SyntheticTask:
    task, n_tokens, carrier, noise, phase = dataset
    return make_task(
        task, n_tokens, seed, num_train, num_test,
        carrier="token0" if carrier == "-" else carrier, noise=noise, phase="fixed" if phase == "-" else phase,
    )


@functools.lru_cache(maxsize=8)
def _picks(dataset: tuple, seed: int, num_train: int, num_test: int, axes: str, blocks: int) -> dict[str, dict[str, Any]]:
    return rule_picks(_dataset(dataset, seed, num_train, num_test), axes, blocks)


def train_config(cell: Cell, seed: int, view: ViewConfig, task: SyntheticTask, profile: Profile, device: str) -> TrainConfig:
    """The trainer's config for one run: plain constant-lr Adam, everything in memory."""
    perceiver = PerceiverConfig(
        position="fourier",
        output_steps=task.target_shape[0],
        output_channels=task.target_shape[1],
        **profile.model,
    )
    return TrainConfig(
        policy=PolicyConfig(view=view, backbone="perceiver", perceiver=perceiver, target_norm="zscore"),
        optim=OptimConfig(name="adam", lr=cell.lr, betas=(cell.beta1, BETA2), grad_clip=None),
        schedule=ScheduleConfig(warmup_steps=0, min_lr_ratio=1.0),
        steps=cell.steps,
        batch_size=profile.batch_size,
        eval_every=profile.eval_every,
        eval_batches=0,
        checkpoint_every=cell.steps,
        log_every=cell.steps,
        seed=seed,
        device=device,
        amp=False,
        out_dir="",
        tensorboard=False,
    )


def _segment(cell: Cell, profile: Profile) -> int:
    """Steps per trainer call: early stopping is checked between calls."""
    if profile.stop_below is None:
        return cell.steps
    return profile.segment_steps if cell.steps > 1000 else 2 * profile.eval_every


def _train_segments(
    config: TrainConfig, task: SyntheticTask, cell: Cell, profile: Profile, progress_label: str | None = None
) -> tuple[Policy, list, list, bool]:
    from rvperceiver.progress import bar

    train_set = TensorDataset(task.train_inputs, task.train_targets)
    test_set = TensorDataset(task.test_inputs, task.test_targets)
    segment = _segment(cell, profile)
    steps_bar = bar(desc=progress_label or "", total=cell.steps, unit="step", enabled=progress_label is not None,
                    leave=False)
    on_step = lambda step, loss: steps_bar.update(1)  # noqa: E731
    with warnings.catch_warnings(), steps_bar:
        # Collapse is one of the outcomes measured here, recorded per run; the trainer's advice is noise.
        warnings.simplefilter("ignore", CollapseWarning)
        if segment >= cell.steps:
            result = train(config, train_set, test_set, out_dir="", progress=False, on_step=on_step)
            return result.policy, result.evals, result.train_losses, False
        evals: list[dict[str, Any]] = []
        losses: list[float] = []
        with tempfile.TemporaryDirectory(prefix="rvp-seed-") as tmp:
            done, resume = 0, False
            while done < cell.steps:
                result = train(config, train_set, test_set, out_dir=tmp, resume=resume, progress=False,
                               stop_at_step=min(cell.steps, done + segment), on_step=on_step)
                evals += result.evals
                losses += result.train_losses
                done, resume = result.step, True
                if done < cell.steps and evals and evals[-1]["nmse"] < (profile.stop_below or -1.0):
                    return result.policy, evals, losses, True
        return result.policy, evals, losses, False


def train_run(
    cell: Cell,
    seed: int,
    task: SyntheticTask,
    profile: Profile,
    device: str = "cpu",
    view_override: ViewConfig | None = None,
    progress_label: str | None = None,
) -> dict[str, Any]:
    """Train one policy of ``cell`` on ``task`` with seed ``seed``; return its record.

    ``progress_label`` shows a progress bar (steps, rate, ETA) with that label on stderr while it trains."""
    started = time.perf_counter()
    view = view_override if view_override is not None else view_config(cell.view, cell.axes)
    config = train_config(cell, seed, view, task, profile, device)
    policy, evals, losses, stopped = _train_segments(config, task, cell, profile, progress_label)
    curve = []
    previous = 0
    for point in evals:
        window = losses[previous : point["step"]]
        previous = point["step"]
        curve.append({"step": point["step"], "test_nmse": point["nmse"], "test_spread": point["spread"],
                      "train_loss": float(np.mean(window)) if window else math.nan})
    final_nmse, final_spread = curve[-1]["test_nmse"], curve[-1]["test_spread"]
    verdict = collapse_verdict(final_nmse, final_spread)
    escape = next((p["step"] for p in curve if p["test_nmse"] < LEARNED_NMSE), None)
    return {
        "record": "run",
        "cell": cell.key,
        **cell.factors(),
        "questions": list(cell.questions),
        "view_config": view.to_dict(),
        "beta2": BETA2,
        "seed": seed,
        "profile": profile.name,
        "test_nmse": final_nmse,
        "test_spread": final_spread,
        "learned": final_nmse < LEARNED_NMSE,
        "verdict": verdict,
        "collapsed": verdict == "collapsed",
        "escape_step": escape,
        "steps_to_nmse_0.1": next((p["step"] for p in curve if p["test_nmse"] < 0.1), None),
        "steps_run": curve[-1]["step"],
        "stopped_early": stopped,
        "best_test_nmse": min(p["test_nmse"] for p in curve),
        "curve": curve,
        "batch_size": profile.batch_size,
        "num_train": task.train_inputs.shape[0],
        "num_test": task.test_inputs.shape[0],
        "model": dict(profile.model),
        "parameters": sum(p.numel() for p in policy.parameters()),
        "device": device,
        "fourier_view": is_fourier_view(view),
        "wall_time_s": time.perf_counter() - started,
    }


def _job(args: tuple[Cell, int, Profile, str]) -> dict[str, Any]:
    cell, seed, profile, device = args
    task = _dataset(cell.dataset, seed, profile.num_train, profile.num_test)
    record = train_run(cell, seed, task, profile, device)
    record["rule_picks"] = _picks(cell.dataset, seed, profile.num_train, profile.num_test, cell.axes,
                                  int(profile.model.get("num_latents", 16)))
    record["dataset_meta"] = {k: v for k, v in task.meta.items() if k in ("carrier_tokens", "carrier_pixels", "image_size")}
    return record


def _init_worker() -> None:
    torch.set_num_threads(1)


def _jobs(
    cells: tuple[Cell, ...], seeds: tuple[int, ...] | None, profile: Profile, device: str, order: str = "seed"
) -> list[tuple]:
    """Seed-major order (every cell's first seed, then every cell's second, …) so a study cut short still has
    every cell with nearly the same number of seeds; the long escape runs (more than 1000 steps) come after every
    short run, so they cannot hold the factorial back; longest first within a round, to balance workers."""
    if order == "cell":  # every seed of the cheapest cell first: each finished cell can be decided on its own
        # At equal cost: the rules' Fourier candidate, then uncentred fft, then the other views; images first.
        priority = ("centre-fft-z", "fft", "centre-fft", "zscore-fft")
        ranked = sorted(cells, key=lambda c: (c.steps * c.n_tokens, priority.index(c.view) if c.view in priority else 9,
                                              not c.task.endswith("image")))
        return [(c, s, profile, device) for c in ranked for s in (seeds if seeds is not None else range(c.seeds))]
    jobs = []
    rounds = len(seeds) if seeds is not None else profile.max_seeds
    for long in (False, True):
        for i in range(rounds):
            batch = [c for c in cells if (seeds is not None or c.seeds > i) and (c.steps > 1000) == long]
            batch.sort(key=lambda c: -(c.steps * c.n_tokens))
            jobs += [(c, seeds[i] if seeds is not None else i, profile, device) for c in batch]
    return jobs


def _read_jsonl(path: Path, profile: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write: that run is simply run again
        if isinstance(record, dict) and record.get("profile") == profile:
            kept.append(record)
    return kept


def _setup_lines(name: str, profile: Profile, cells: tuple[Cell, ...], seeds: tuple[int, ...] | None) -> list[str]:
    if name == "theory":
        return ["Closed form of the seed's DFT algebra next to numpy's FFT (float64).", ""]
    seed_text = f"seeds {list(seeds)} on every cell" if seeds else "seeds 0… per cell as listed (k/n shows n)"
    lines = [
        f"Profile **{profile.name}** ({profile.description}): {len(cells)} cells, {seed_text}.",
        f"Training: plain Adam (β2 {BETA2}, constant lr, no clipping), batch {profile.batch_size}, "
        f"{profile.num_train} train / {profile.num_test} held-out test examples per dataset seed, test NMSE every "
        f"{profile.eval_every} steps; a run stops early once its test NMSE < {profile.stop_below}. Perceiver: "
        f"{profile.model}, Fourier position features on every view.",
        f"A run **learned** when its final test NMSE < {LEARNED_NMSE}; its **escape step** is the first evaluation "
        f"with test NMSE < {LEARNED_NMSE}. Intervals: Clopper–Pearson 95%.",
    ]
    if profile.cut:
        lines.append("Cut from the full grid to fit: " + "; ".join(profile.cut) + ".")
    return lines + [""]


def _merge_records(path: Path, experiment: str, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records already in ``path`` from other experiments (derived records dropped), followed by ``new``."""
    kept: list[dict[str, Any]] = []
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: existing results.json is not valid JSON ({err}); move it away") from err
        if isinstance(previous, list):
            kept = [
                r for r in previous
                if isinstance(r, dict) and r.get("experiment") != experiment and r.get("record") in ("run", "theory")
            ]
    return kept + new


def _write_outputs(
    out: Path, name: str, profile: Profile, cells: tuple[Cell, ...], seeds: tuple[int, ...] | None,
    records: list[dict[str, Any]], with_plots: bool,
) -> list[dict[str, Any]]:
    results_path = out / "results.json"
    base = _merge_records(results_path, name, records)
    runs = [r for r in base if r.get("record") == "run"]
    derived: list[dict[str, Any]] = []
    derived += cell_records(runs)
    derived += [{"record": "verdict", **v.to_dict()} for v in claim_verdicts(runs)]
    derived += confusion_records(runs)
    all_records = base + derived
    atomic_write_text(results_path, json.dumps(all_records, indent=1, allow_nan=True))
    experiments = sorted({r["experiment"] for r in base if "experiment" in r})
    title = f"Seed claims ({', '.join(experiments)}; profile {profile.name})"
    if runs:
        setup = _setup_lines("runs", profile, profile.cells if name == "theory" else cells, seeds)
    else:
        setup = _setup_lines("theory", profile, (), None)
    atomic_write_text(out / "report.md", render_report(all_records, title, setup))
    if with_plots:
        for task in sorted({r["task"] for r in runs}):
            plots.plot_learned_vs_n(runs, task, out / f"learned_vs_n_{task}.png")
        if any({"R1", "R2"} & set(r.get("questions") or ()) for r in runs):
            plots.plot_escape_steps(runs, out / "escape_steps.png")
        theory = [r for r in base if r.get("record") == "theory"]
        if theory:
            plots.plot_theory(theory, out / "theory.png")
    return all_records


def run_experiment(
    name: str,
    profile: str = "quick",
    out_dir: str | Path = "experiment-results",
    seeds: list[int] | tuple[int, ...] | None = None,
    device: str | None = None,
    progress: bool = False,
    workers: int | None = None,
    questions: list[str] | tuple[str, ...] | None = None,
    order: str = "seed",
    report_only: bool = False,
) -> list[dict[str, Any]]:
    """Run one experiment (``tiny-difference``, ``frequency-shift`` or ``theory``) and write its outputs.

    ``seeds`` None = each cell's own count from the profile (seeds 0, 1, …); a list = exactly those seeds on
    every cell. ``questions`` (e.g. ``["R3", "R4"]``) keeps only the cells that serve one of them. ``order``:
    ``seed`` (every cell's first seed, then every cell's second, …) or ``cell`` (all seeds of the cheapest cell,
    then the next), for a budget that may run out. ``report_only`` trains nothing: it rewrites results.json,
    report.md and the plots from the runs already in the log (a study cut short reports what it has).
    Returns this experiment's run (or theory) records.
    """
    if order not in ("seed", "cell"):
        raise ConfigError(f"order {order!r} does not exist; expected seed or cell")
    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment {name!r} does not exist; expected one of {', '.join(EXPERIMENTS)}")
    prof = get_profile(profile)
    run_seeds = check_seeds(seeds) if seeds is not None else None
    device = device or prof.device
    workers = prof.workers if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers: expected a positive integer, got {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    if name == "theory" and report_only:
        previous = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else []
        records = [r for r in previous if isinstance(r, dict) and r.get("record") == "theory"]
        _write_outputs(out, name, prof, (), None, records, with_plots=True)
        return records
    if name == "theory":
        records = [{"record": "theory", "experiment": name, **r} for r in theory_table(THEORY_SIZES[prof.name])]
        _write_outputs(out, name, prof, (), None, records, with_plots=True)
        return records

    cells = prof.grid(name)
    if questions is not None:
        known = sorted({q for c in prof.cells for q in c.questions})
        unknown = sorted(set(questions) - set(known))
        if unknown or not questions:
            raise ConfigError(f"questions {list(questions)}: expected some of {', '.join(known)}")
        cells = tuple(c for c in cells if set(c.questions) & set(questions))
    log_path = out / f"runs-{name}.jsonl"
    records = [r for r in _read_jsonl(log_path, prof.name)]
    done = {(r["cell"], r["seed"]) for r in records}
    todo = [job for job in _jobs(cells, run_seeds, prof, device, order) if (job[0].key, job[1]) not in done]
    if report_only:
        if progress:
            print(f"report only: {len(records)} runs in {log_path}, {len(todo)} of the asked-for runs not trained", flush=True)
        todo = []
    wanted = {(job[0].key, job[1]) for job in _jobs(cells, run_seeds, prof, device)}
    # Runs of this profile already in the log that this call does not ask for are kept in the outputs too.
    records = sorted(records, key=lambda r: (r["cell"], r["seed"]) not in wanted)
    total = len(todo) + len(records)
    if progress and done:
        print(f"resuming: {len(records)} of {total} runs already in {log_path}", flush=True)

    def finished(record: dict[str, Any]) -> None:
        record["experiment"] = name
        records.append(record)
        with log_path.open("a") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
        if progress:
            print(
                f"[{len(records)}/{total}] {record['task']} N={record['n_tokens']} carrier={record['carrier']} "
                f"noise={record['noise']} phase={record['phase']} {record['view']}/{record['axes']} "
                f"β1={record['beta1']} lr={record['lr']} seed {record['seed']}: test NMSE {record['test_nmse']:.3f} "
                f"({'learned' if record['learned'] else 'stuck'}, escape {record['escape_step']}, "
                f"{record['steps_run']} steps), {record['wall_time_s']:.1f} s",
                flush=True,
            )
        if len(records) % _SUMMARY_EVERY == 0:
            _write_outputs(out, name, prof, cells, run_seeds, records, with_plots=False)

    if workers == 1 or len(todo) <= 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # see the module docstring; restored so a caller's process is left as it was
        try:
            for job in todo:
                finished(_job(job))
        finally:
            torch.set_num_threads(threads)
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker) as pool:
            for record in pool.imap_unordered(_job, todo, chunksize=1):
                finished(record)
    _write_outputs(out, name, prof, cells, run_seeds, records, with_plots=True)
    return records


def main_experiment(
    name: str,
    profile: str = "quick",
    out: str | Path = "experiment-results",
    seeds: list[int] | None = None,
    device: str | None = None,
    workers: int | None = None,
    questions: list[str] | None = None,
    order: str = "seed",
    report_only: bool = False,
) -> int:
    """CLI entry: run, then print where the outputs are and the claim verdicts. Returns an exit code."""
    started = time.perf_counter()
    run_experiment(name, profile, out, seeds, device, progress=True, workers=workers, questions=questions, order=order,
                   report_only=report_only)
    out_path = Path(out)
    records = json.loads((out_path / "results.json").read_text())
    print(f"{name} ({profile}) finished in {time.perf_counter() - started:.1f} s; results in {out_path}/")
    for verdict in (r for r in records if r.get("record") == "verdict"):
        print(f"  {verdict['claim']} {verdict['statement']}: {verdict['status']}")
    print(f"  report: {out_path / 'report.md'}")
    return 0


def demo(
    out_dir: str | Path = "demo-results", n_tokens: int = 12288, profile: str = "quick", seed: int = 0,
    progress: bool = False,
) -> str:
    """A small, fast comparison (about a minute on 2 idle CPU cores): raw tokens (with Adam β1 = 0.9 and the
    seed's β1 = 0.999) vs spectral views and the adaptive choice on the tiny-difference task at one N (default
    12,288, one 64×64×3 frame's worth of scalar tokens), with the quick profile's model and a 300-step budget.
    Returns the comparison table as text (also written to ``demo.md`` and drawn as ``demo.png`` beside
    ``results.json``). ``progress`` shows a bar per row on stderr."""
    prof = get_profile(profile)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = 300 if prof.name != "test" else 20
    task = make_task("tiny-difference", n_tokens, seed, prof.num_train, prof.num_test)
    choice: AdaptiveChoice = choose_view(_pairs(task), task.input_shape)
    lines = [
        f"Tiny-difference task: N = {n_tokens} tokens, one token carries the target, the rest is a shared "
        f"background + noise. {steps} Adam steps, held-out test set.",
        f"Adaptive choice: {choice.chosen} (rule {choice.rule}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in choice.statistics.items()) + ")",
        "",
        f"{'view':<18} {'β1':>6} {'test NMSE':>10} {'steps to 0.1':>13} {'verdict':>10} {'time (s)':>9}",
    ]
    records = []
    no_early_stop = Profile(**{**prof.__dict__, "stop_below": None})
    for number, (view, beta1) in enumerate(DEMO_RUNS, start=1):
        label = f"demo row {number}/{len(DEMO_RUNS)}: {view} β1={beta1}" if progress else None
        cell = Cell("tiny-difference", n_tokens, "raw+fourier-pos" if view == ADAPTIVE else view, carrier="token0",
                    beta1=beta1, steps=steps, seeds=1)
        record = train_run(cell, seed, task, no_early_stop, view_override=choice.view if view == ADAPTIVE else None,
                           progress_label=label)
        record["view"] = view
        record["experiment"] = "demo"
        records.append(record)
        reached = record["steps_to_nmse_0.1"]
        lines.append(
            f"{view:<18} {beta1:>6} {record['test_nmse']:>10.3f} {('never' if reached is None else str(reached)):>13} "
            f"{record['verdict']:>10} {record['wall_time_s']:>9.1f}"
        )
    lines.append("(NMSE 1.0 = predicting the mean; 'collapsed' = the seed's symptom)")
    table = "\n".join(lines)
    atomic_write_text(out / "results.json", json.dumps(records, indent=1, ensure_ascii=False))
    atomic_write_text(out / "demo.md", table + "\n")
    from rvperceiver.plotting import plot_demo_table

    plot_demo_table(records, lines[0], out / "demo.png")
    return table

