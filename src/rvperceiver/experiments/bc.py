"""The behaviour-cloning study in simulation: does the spectral view make a Perceiver policy work on Reacher?

One call, :func:`run_bc_study`, does everything from nothing:

1. generate the scripted expert's demos (training file and a separate held-out test file) unless they exist;
2. train, on the same demos and for the same number of gradient steps, each learned model:
   a Perceiver on raw scalar tokens (identity view, z-scored per token), the same Perceiver on the seed's Fourier
   view (centre → packed rfft over the flat token axis → z-score per bin), and a small spatial-softmax CNN; the
   ``long`` and ``full`` profiles add the same Perceiver on raw 4×4 patch tokens, a diagnostic that separates "the
   Perceiver fails on these frames" from "scalar tokenisation fails on these frames";
3. let the seed's adaptive rule choose raw or Fourier on the training split. Its two candidates are exactly the
   two forced views above, so the "adaptive" row *is* one of those runs; it is reported as such (with the
   participation ratios that decided it) instead of training an identical model twice;
4. score every model offline (validation NMSE and collapse verdict, held-out per-step end-effector error) and in
   closed loop (fingertip within 1 cm of the target after 50 steps, on seeds that no demo used), next to the
   expert, the mean-trajectory predictor and the perfect-predictor ceiling of the same controller;
5. write ``results.json`` (everything, per seed and per episode) and ``report.md`` (the table).

The numbers are whatever the run measures: nothing here decides in advance which model should win.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rvperceiver.data.formats import open_episodes
from rvperceiver.data.loading import load_windows
from rvperceiver.data.windows import WindowDataset
from rvperceiver.errors import ConfigError, DataError
from rvperceiver.experiments.bc_models import (
    CNN_VIEW,
    FOURIER_VIEW,
    MODELS,
    PATCH_MODEL,
    PATCH_VIEW,
    RAW_VIEW,
    TRAIN_ORDER,
)
from rvperceiver.experiments.bc_report import render_report, summarise
from rvperceiver.train.config import TrainConfig, from_dict, to_dict, to_yaml
from rvperceiver.train.loop import evaluate
from rvperceiver.train.metrics import collapse_verdict, nmse, spread_ratio
from rvperceiver.train.run import (
    VIEW_CHOICE_FILE,
    choose_view_for_windows,
    train_from_config,
)
from rvperceiver.utils import atomic_write_text

__all__ = [
    "BCProfile",
    "MODELS",
    "PATCH_MODEL",
    "PROFILES",
    "get_bc_profile",
    "learned_models",
    "render_report",
    "run_bc_study",
]

TRAIN_FILE = "demos.hdf5"
TEST_FILE = "test_demos.hdf5"


@dataclass(frozen=True)
class BCProfile:
    """Sizes of one study. ``quick`` fits ~45 minutes on 2 shared CPU cores, ``long`` is quick with five times
    the steps plus the patch-token row (for 2 idle cores); ``full`` is meant for a GPU.

    ``perceiver`` and ``cnn`` are override mappings for the backbones' configs; ``steps`` and ``batch_size`` are
    the same for every learned model, so they all see the same number of examples. ``patch_perceiver`` adds the
    Perceiver on raw patch tokens (same backbone settings as the scalar-token Perceivers).
    """

    name: str
    n_demos: int
    n_test_demos: int
    t_obs: int
    t_pred: int
    steps: int
    batch_size: int
    seeds: tuple[int, ...]
    perceiver: dict[str, Any]
    cnn: dict[str, Any]
    perceiver_lr: float = 5e-4
    cnn_lr: float = 1e-3
    warmup_steps: int = 50
    eval_episodes: int = 50
    eval_seed: int = 100_000
    demo_seed: int = 0
    test_seed: int = 200_000
    replan_every: int = 4
    image_size: int = 64
    valid_fraction: float = 0.1
    torch_threads: int | None = None
    strip_episodes: int = 4
    episode_steps: int | None = None  # None = the simulator's default episode length (demos only)
    patch_perceiver: bool = False


_QUICK = BCProfile(
    name="quick",
    n_demos=200,
    n_test_demos=20,
    t_obs=2,
    t_pred=8,
    steps=300,
    batch_size=16,
    seeds=(0,),
    # Much smaller than the default 64 x 128 Perceiver so that two runs fit on 2 shared CPU cores: with 64
    # latent channels a step took 2.4 s under the load measured on 2026-11-26 (600 steps = 24 min per run),
    # and 3 s with 32 channels once the load reached 7 (hence 300 steps).
    perceiver={"num_latents": 32, "latent_channels": 32, "self_heads": 4, "self_layers_per_block": 2, "num_bands": 6},
    cnn={},
    torch_threads=2,
)

PROFILES: dict[str, BCProfile] = {
    "quick": _QUICK,
    # quick's demos (so a --work directory holding them is reused) and model, trained five times longer, plus the
    # patch-token Perceiver. 1500 steps of batch 16 = 24,000 examples, about 3.3 epochs of the 7,380 windows.
    "long": dataclasses.replace(_QUICK, name="long", steps=1500, patch_perceiver=True),
    "full": BCProfile(
        name="full",
        n_demos=1000,
        n_test_demos=50,
        t_obs=2,
        t_pred=8,
        steps=5000,
        batch_size=32,
        seeds=(0, 1, 2),
        perceiver={},
        cnn={},
        perceiver_lr=3e-4,
        warmup_steps=200,
        eval_episodes=100,
        patch_perceiver=True,
    ),
}


def learned_models(profile: BCProfile) -> tuple[str, ...]:
    """The models this profile trains, in training order (the adaptive row is not trained separately)."""
    return tuple(m for m in TRAIN_ORDER if m != PATCH_MODEL or profile.patch_perceiver)


def get_bc_profile(name: str) -> BCProfile:
    if name not in PROFILES:
        raise ConfigError(f"unknown bc profile {name!r}; available: {', '.join(PROFILES)}")
    return PROFILES[name]


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def _ensure_demos(path: Path, n_episodes: int, seed: int, profile: BCProfile, valid_fraction: float, progress: bool) -> dict[str, Any]:
    """Generate the demo file unless it exists; an existing file must have been made with the same settings."""
    from rvperceiver.sim.generate import generate_to_file

    if path.exists():
        info = (open_episodes(path).meta.get("env_args") or {}).get("rvperceiver") or {}
        made_with = (info.get("seed"), info.get("n_episodes"))
        if made_with != (seed, n_episodes):
            raise DataError(
                f"{path} exists but was made with (seed, episodes) = {made_with}, this study needs {(seed, n_episodes)}; "
                f"delete it or use another output directory"
            )
        return {"path": str(path), "episodes": n_episodes, "seed": seed, "reused": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if profile.episode_steps is not None:
        kwargs["episode_steps"] = profile.episode_steps
    stats = generate_to_file(
        path, n_episodes, seed, image_size=profile.image_size, valid_fraction=valid_fraction, progress=progress, **kwargs
    )
    return {**stats, "seed": seed, "reused": False}


# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------


def _model_config(model: str, profile: BCProfile, data_path: Path, seed: int, out_dir: Path) -> TrainConfig:
    """The full TrainConfig of one learned model (written next to its run, so `rvperceiver train` can redo it)."""
    if model == "cnn":
        view, backbone, lr = CNN_VIEW, "cnn", profile.cnn_lr
    else:
        views = {"raw_perceiver": RAW_VIEW, "spectral_fourier": FOURIER_VIEW, PATCH_MODEL: PATCH_VIEW}
        if model not in views:
            raise ConfigError(f"bc study: unknown model {model!r}; expected one of {', '.join(TRAIN_ORDER)}")
        view, backbone = views[model], "perceiver"
        lr = profile.perceiver_lr
    raw = {
        "data": {
            "path": str(data_path),
            "t_obs": profile.t_obs,
            "t_pred": profile.t_pred,
            "valid_fraction": profile.valid_fraction,
        },
        "policy": {
            "view": dict(view),
            "backbone": backbone,
            "perceiver": {**profile.perceiver, "output_steps": profile.t_pred, "output_channels": 3},
            "cnn": {**profile.cnn, "output_steps": profile.t_pred, "output_channels": 3},
            "target_norm": "zscore",
        },
        "optim": {"name": "adam", "lr": lr, "betas": [0.9, 0.999], "grad_clip": 1.0},
        "schedule": {"warmup_steps": min(profile.warmup_steps, max(0, profile.steps - 1)), "min_lr_ratio": 0.1},
        "steps": profile.steps,
        "batch_size": profile.batch_size,
        # Evaluate (on the whole validation split) and checkpoint once, at the end: mid-run evaluations cost
        # CPU time the study does not have, and the last checkpoint is the one scored.
        "eval_every": profile.steps,
        "eval_batches": 0,
        "checkpoint_every": profile.steps,
        "log_every": max(1, min(25, profile.steps)),
        "seed": seed,
        "device": "auto",
        "amp": True,
        "tensorboard": False,
        "out_dir": str(out_dir),
    }
    return from_dict(raw)


# ---------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _offline_scores(policy: torch.nn.Module, dataset: WindowDataset, batch_size: int) -> dict[str, Any]:
    """Per-step EE error (metres, mean Euclidean over every step of every window), NMSE, spread and verdict.

    Same quantity as :func:`rvperceiver.sim.evaluate.offline_ee_error`, computed in batches.
    """
    device = next(policy.parameters()).device
    predictions, targets = [], []
    for frames, target in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        predictions.append(policy.predict(frames.to(device)).float().cpu())
        targets.append(target.float())
    return _scores(torch.cat(predictions), torch.cat(targets))


def _scores(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    error = float(torch.linalg.vector_norm(prediction.double() - target.double(), dim=-1).mean())
    n, s = nmse(prediction, target), spread_ratio(prediction, target)
    return {"ee_error_m": error, "nmse": n, "spread": s, "verdict": collapse_verdict(n, s), "windows": int(target.shape[0])}


def _closed_loop_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("success_rate", "mean_final_distance", "median_final_distance", "episodes")
    return {k: report[k] for k in keys if k in report}


def _closed_loop(
    policy_fn: Any,
    profile: BCProfile,
    train_seeds: range,
    target_render_scale: float,
    references: bool,
    strip: Path | None,
    progress: bool = False,
) -> dict[str, Any]:
    from rvperceiver.sim.evaluate import closed_loop_eval

    return closed_loop_eval(
        policy_fn,
        n_episodes=profile.eval_episodes,
        seed=profile.eval_seed,
        t_obs=profile.t_obs,
        t_pred=profile.t_pred,
        replan_every=profile.replan_every,
        image_size=profile.image_size,
        train_seeds=train_seeds,
        expert_reference=references,
        oracle_reference=references,
        target_render_scale=target_render_scale,
        save_strip=strip,
        strip_episodes=profile.strip_episodes,
        progress=progress,
    )


# ---------------------------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        info["load_average_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def run_bc_study(
    profile: str | BCProfile = "quick",
    out_dir: str | os.PathLike[str] = "results/bc",
    seeds: Sequence[int] | None = None,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the behaviour-cloning comparison and write ``results.json`` and ``report.md`` in ``out_dir``.

    Heavy intermediate files (demos, run directories with checkpoints) go under ``work_dir`` (default
    ``out_dir/work``); the small outputs worth keeping (results, report, rollout strips) sit at the top of
    ``out_dir``. Existing demo files are reused when they were made with the same settings. Paths are made
    absolute first, so nothing breaks if the working directory changes during the hour-long run. Returns the
    results (as written to JSON).
    """
    prof = get_bc_profile(profile) if isinstance(profile, str) else profile
    run_seeds = tuple(int(s) for s in (seeds if seeds is not None else prof.seeds))
    if not run_seeds:
        raise ConfigError("bc study: seeds is empty; give at least one training seed")
    if prof.torch_threads is not None:
        torch.set_num_threads(prof.torch_threads)
    shown_out = Path(out_dir)
    out = shown_out.resolve()
    work = Path(work_dir).resolve() if work_dir is not None else out / "work"
    strips = out / "strips"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = _Log(progress)

    # 1. Demos.
    train_path, test_path = work / "data" / TRAIN_FILE, work / "data" / TEST_FILE
    log(f"demos: {prof.n_demos} training episodes -> {train_path}")
    data_info = {
        "train": _ensure_demos(train_path, prof.n_demos, prof.demo_seed, prof, prof.valid_fraction, progress),
        "test": _ensure_demos(test_path, prof.n_test_demos, prof.test_seed, prof, 0.0, progress),
    }
    from rvperceiver.sim.evaluate import constant_policy_fn, mean_target_trajectory
    from rvperceiver.sim.generate import training_seed_range

    episodes = open_episodes(train_path)
    env_args = episodes.meta.get("env_args") or {}
    train_seeds = training_seed_range(env_args)
    render_scale = float(env_args["rvperceiver"].get("target_render_scale", 1.0))
    test_set = WindowDataset(list(open_episodes(test_path)), prof.t_obs, prof.t_pred)
    windows = load_windows(train_path, t_obs=prof.t_obs, t_pred=prof.t_pred, valid_fraction=prof.valid_fraction)
    data_info["train_windows"], data_info["valid_windows"] = len(windows.train), len(windows.valid or [])
    data_info["test_windows"] = len(test_set)

    # 2. The adaptive rule's choice, on the training split only (as `view_choice: adaptive` does in training).
    log("adaptive view choice on the training split")
    choice_start = time.perf_counter()
    choice = choose_view_for_windows(windows.train, "scalar", 4, progress=progress)
    adaptive = {
        "chosen": choice.chosen,
        "statistics": choice.statistics,
        "reason": choice.reason,
        "view": dataclasses.asdict(choice.view),
        "seconds": time.perf_counter() - choice_start,
    }
    chosen_view = {k: adaptive["view"][k] for k in RAW_VIEW}
    adaptive_model = "raw_perceiver" if chosen_view == RAW_VIEW else "spectral_fourier" if chosen_view == FOURIER_VIEW else None
    if adaptive_model is None:  # not reachable with the default candidates; kept so a change there fails loudly
        raise ConfigError(f"bc study: the adaptive rule chose a view that is neither forced view: {chosen_view}")
    adaptive["same_run_as"] = adaptive_model
    log(f"adaptive: {choice.reason}")

    # 3. References: the mean-trajectory predictor (as the "policy"), the expert and the oracle, on the eval seeds.
    log("closed loop: mean-trajectory predictor, expert, oracle")
    mean_traj = mean_target_trajectory(list(windows.train.episodes), prof.t_obs, prof.t_pred)
    reference = _closed_loop(constant_policy_fn(mean_traj), prof, train_seeds, render_scale, True, None, progress)
    test_targets = torch.as_tensor(test_set.targets_array(), dtype=torch.float32)
    valid_targets = torch.as_tensor(windows.valid.targets_array(), dtype=torch.float32) if windows.valid else None
    mean_pred = torch.as_tensor(mean_traj, dtype=torch.float32)
    references = {
        "expert": {"closed_loop": _closed_loop_summary(reference["expert"])},
        "oracle": {"closed_loop": _closed_loop_summary(reference["oracle"])},
        "mean_trajectory": {
            "closed_loop": _closed_loop_summary(reference),
            "test": _scores(mean_pred.expand_as(test_targets), test_targets),
            "valid": _scores(mean_pred.expand_as(valid_targets), valid_targets) if valid_targets is not None else None,
        },
    }
    settings = reference["settings"]

    # 4. The learned models, each seed, sequentially (parallel runs only fight over the cores).
    runs: list[dict[str, Any]] = []
    results = {
        "study": "bc",
        "complete": False,
        "profile": dataclasses.asdict(prof),
        "seeds": list(run_seeds),
        "command": f"rvperceiver experiment bc --profile {prof.name} --out {shown_out}",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "data": data_info,
        "closed_loop_settings": settings,
        "adaptive_choice": adaptive,
        "references": references,
        "runs": runs,
    }

    def write(complete: bool) -> None:
        results["complete"] = complete
        results["summary"] = summarise(references, runs)
        results["wall_time_s"] = time.perf_counter() - started
        atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=_json_default) + "\n")
        atomic_write_text(out / "report.md", render_report(results))

    for seed in run_seeds:
        for model in learned_models(prof):
            run_dir = work / "runs" / f"{model}_seed{seed}"
            config = _model_config(model, prof, train_path, seed, run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "config.yaml", to_yaml(config))
            log(f"train {model} seed {seed}: {prof.steps} steps of batch {prof.batch_size}")
            t0 = time.perf_counter()
            result = train_from_config(config, overwrite=True, progress=progress)
            train_wall = time.perf_counter() - t0
            policy = result.policy
            policy.eval()
            log(f"  trained in {train_wall:.0f} s; scoring")
            t1 = time.perf_counter()
            valid_metrics = evaluate(policy, windows.valid, dataclasses.replace(config, eval_batches=0))
            test_scores = _offline_scores(policy, test_set, prof.batch_size)
            strip = strips / f"{model}_seed{seed}.png" if seed == run_seeds[0] else None
            closed = _closed_loop(policy, prof, train_seeds, render_scale, False, strip, progress)
            losses = result.train_losses
            runs.append(
                {
                    "model": model,
                    "seed": seed,
                    "run_dir": str(run_dir),
                    "backbone": config.policy.backbone,
                    "view": to_dict(config.policy.view),
                    "parameters": int(sum(p.numel() for p in policy.parameters())),
                    "steps": result.step,
                    "batch_size": config.batch_size,
                    "lr": config.optim.lr,
                    "train_wall_s": train_wall,
                    "seconds_per_step": train_wall / max(1, result.step),
                    "eval_wall_s": time.perf_counter() - t1,
                    "train_loss_first": float(np.mean(losses[: max(1, len(losses) // 20)])) if losses else None,
                    "train_loss_last": float(np.mean(losses[-max(1, len(losses) // 20):])) if losses else None,
                    "valid": valid_metrics.to_dict() if valid_metrics else {},
                    "test": test_scores,
                    "closed_loop": _closed_loop_summary(closed),
                    "strip": str(strip.relative_to(out)) if strip is not None and strip.exists() else None,
                }
            )
            log(
                f"  {model} seed {seed}: success {closed['success_rate']:.2f}, valid NMSE "
                f"{runs[-1]['valid'].get('nmse', float('nan')):.3f} [{runs[-1]['valid'].get('verdict')}]"
            )
            if model == adaptive_model:
                runs.append({**runs[-1], "model": "spectral_adaptive", "same_run_as": adaptive_model})
            write(complete=False)
        adaptive_dir = work / "runs" / f"spectral_adaptive_seed{seed}"
        adaptive_dir.mkdir(parents=True, exist_ok=True)
        record = {k: adaptive[k] for k in ("chosen", "statistics", "reason", "view", "same_run_as")}
        atomic_write_text(adaptive_dir / VIEW_CHOICE_FILE, json.dumps(record, indent=2) + "\n")

    write(complete=True)
    log(f"done in {results['wall_time_s']:.0f} s: {out / 'report.md'}")
    return results


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled, self.start = enabled, time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[bc {time.perf_counter() - self.start:6.0f} s] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Summary and report
# ---------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rvperceiver.experiments.bc --profile quick --out results/bc``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rvperceiver.experiments.bc", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="quick")
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds (default: the profile's)")
    parser.add_argument("--out", default="results/bc")
    parser.add_argument("--work", default=None, help="directory for demos and checkpoints (default: OUT/work)")
    parser.add_argument("--clean-work", action="store_true", help="delete the work directory at the end")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    run_bc_study(args.profile, args.out, seeds, work_dir=args.work, progress=True)
    if args.clean_work:
        shutil.rmtree(Path(args.work) if args.work else Path(args.out) / "work", ignore_errors=True)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
