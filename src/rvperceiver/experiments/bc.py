"""The behaviour-cloning study on Reacher: which input view lets a Perceiver policy reach, tier by tier?

One call, :func:`run_bc_study`, does everything from nothing, as the sequence of CLI commands that
:func:`study_commands` prints (so any row can be rerun alone):

1. per task tier (:mod:`rvperceiver.sim.tiers`), generate the scripted expert's demos: frames, the setpoints the
   tracker received (``robot0_eef_setpoint``, the training target) and, on ``arm-hidden``, the joint state as a
   low-dim observation;
2. score the references on the evaluation seeds (never training seeds): the expert, the oracle (the expert's own
   future setpoints through the same receding horizon) and the mean predictor (the mean training chunk);
3. let the seed's adaptive rule pick raw or Fourier on each tier's training split; the "adaptive" row *is* the
   run of the view it picked, reported as such;
4. train every (tier, model) cell of the profile on every training seed; the learning rate is constant after
   warm-up, so the policy after ``b`` steps of a longer run is exactly the policy of a ``b``-step run (same data
   order, same weights): each budget is a stop of one run, scored there;
5. at each budget: validation NMSE and the closed loop on the 200 evaluation seeds (success within 2 cm at the last
   step, within 1 cm, ever within 2 cm, final distances), paired across models;
6. write ``results.json`` (everything, per episode), ``report.md`` (tables with Wilson intervals, McNemar tests,
   the pre-registered decision rule's verdict) and the pictures.

The numbers are whatever the run measures: the decision rule is in ``bc_stats.py`` and the README, written before.
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvperceiver.data.formats import open_episodes
from rvperceiver.data.loading import load_windows
from rvperceiver.errors import ConfigError, DataError
from rvperceiver.experiments.bc_models import MODEL_VIEWS, backbone_of
from rvperceiver.experiments.bc_profile import PROFILES, BCProfile, get_bc_profile, tier_state_keys
from rvperceiver.experiments.bc_report import render_report, summarise
from rvperceiver.train.config import TrainConfig, from_dict, to_yaml
from rvperceiver.utils import atomic_write_text, json_default

__all__ = ["BCProfile", "PROFILES", "cell_config", "closed_loop_config", "get_bc_profile", "merge_results", "reusable_runs", "run_bc_study", "study_commands", "tier_state_keys", "write_merged"]

TRAIN_FILE = "demos.hdf5"
TEST_FILE = "test_demos.hdf5"
SETPOINT_KEY = "robot0_eef_setpoint"


# ---------------------------------------------------------------------------------------------------------------
# Paths, configs and the commands that reproduce each row
# ---------------------------------------------------------------------------------------------------------------


def _data_path(work: Path, tier: str, test: bool = False) -> Path:
    return work / "data" / tier / (TEST_FILE if test else TRAIN_FILE)


def _run_dir(work: Path, tier: str, model: str, seed: int) -> Path:
    return work / "runs" / tier / f"{model}_seed{seed}"


def cell_config(tier: str, model: str, profile: BCProfile, data_path: Path, seed: int, out_dir: Path) -> TrainConfig:
    """The TrainConfig of one cell (``steps`` = the largest budget; a budget ``b`` is ``steps=b``)."""
    backbone = backbone_of(model)
    lr = profile.cnn_lr if backbone == "cnn" else profile.perceiver_lr
    last = profile.budgets[-1]
    raw = {
        "data": {
            "path": str(data_path),
            "ee_key": SETPOINT_KEY,
            "state_keys": list(tier_state_keys(tier)),
            "t_obs": profile.t_obs,
            "t_pred": profile.t_pred,
            "valid_fraction": profile.valid_fraction,
        },
        "policy": {
            "view": dict(MODEL_VIEWS[model]),
            "backbone": backbone,
            "perceiver": {**profile.perceiver, "output_steps": profile.t_pred, "output_channels": 3},
            "cnn": {**profile.cnn, "output_steps": profile.t_pred, "output_channels": 3},
            "target_norm": "zscore",
        },
        "optim": {"name": "adam", "lr": lr, "betas": [0.9, 0.999], "grad_clip": 1.0},
        # Constant after warm-up, so the policy after b steps is the same whatever the total: budgets are stops.
        "schedule": {"warmup_steps": min(profile.warmup_steps, max(0, profile.budgets[0] - 1)), "min_lr_ratio": 1.0},
        "steps": last,
        "batch_size": profile.batch_size,
        "eval_every": last,
        "eval_batches": 0,
        "checkpoint_every": last,
        "log_every": max(1, min(25, last)),
        "seed": seed,
        "device": "auto",
        "amp": True,
        "tensorboard": False,
        "out_dir": str(out_dir),
    }
    return from_dict(raw)


def study_commands(profile: BCProfile, work: Path, seeds: Sequence[int]) -> list[dict[str, str]]:
    """Every step of the study as a CLI command (what one row needs, in order)."""
    commands: list[dict[str, str]] = []
    scale_arg = ""
    for tier in profile.tiers:
        data, test = _data_path(work, tier), _data_path(work, tier, test=True)
        commands.append({
            "what": f"{tier}: demos",
            "command": f"rvperceiver sim generate --tier {tier} --episodes {profile.n_demos} --seed {profile.demo_seed} "
            f"--image-size {profile.image_size} --valid-fraction {profile.valid_fraction}{scale_arg} --out {data}",
        })
        commands.append({
            "what": f"{tier}: held-out demos",
            "command": f"rvperceiver sim generate --tier {tier} --episodes {profile.n_test_demos} --seed {profile.test_seed} "
            f"--image-size {profile.image_size} --valid-fraction 0{scale_arg} --out {test}",
        })
    for seed in seeds:
        for tier, model in profile.cells:
            run = _run_dir(work, tier, model, seed)
            for budget in profile.budgets:
                budget_dir = run / f"steps{budget}"
                commands.append({
                    "what": f"{tier} / {model} / seed {seed} / {budget} steps: train",
                    "command": f"rvperceiver train --config {run / 'config.yaml'} steps={budget} eval_every={budget} "
                    f"checkpoint_every={budget} --out {budget_dir}",
                })
                commands.append({
                    "what": f"{tier} / {model} / seed {seed} / {budget} steps: validation NMSE",
                    "command": f"rvperceiver eval --checkpoint {budget_dir} --data {_data_path(work, tier)} --split valid",
                })
                commands.append({
                    "what": f"{tier} / {model} / seed {seed} / {budget} steps: closed loop",
                    "command": f"rvperceiver sim eval --checkpoint {budget_dir} --tier {tier} --episodes "
                    f"{profile.eval_episodes} --seed {profile.eval_seed} --execute {profile.execute} --out "
                    f"{budget_dir / 'closed_loop.json'}",
                })
    return commands


# ---------------------------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------------------------


def _ensure_demos(path: Path, tier: str, n_episodes: int, seed: int, profile: BCProfile, valid_fraction: float,
                  progress: bool) -> dict[str, Any]:
    """Generate the demo file unless it exists; an existing file must have been made with the same settings."""
    from rvperceiver.sim.generate import generate_to_file

    if path.exists():
        info = (open_episodes(path).meta.get("env_args") or {}).get("rvperceiver") or {}
        made_with = (info.get("seed"), info.get("n_episodes"), (info.get("tier") or {}).get("name"))
        if made_with != (seed, n_episodes, tier):
            raise DataError(
                f"{path} exists but was made with (seed, episodes, tier) = {made_with}, this study needs "
                f"{(seed, n_episodes, tier)}; delete it or use another work directory"
            )
        return {"path": str(path), "episodes": n_episodes, "seed": seed, "tier": tier, "reused": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = generate_to_file(
        path, n_episodes, seed, image_size=profile.image_size, valid_fraction=valid_fraction, progress=progress,
        tier=tier, episode_steps=profile.episode_steps,
    )
    return {**stats, "seed": seed, "reused": False}


def closed_loop_config(profile: BCProfile, tier: str) -> Any:
    from rvperceiver.sim.closed_loop import ClosedLoopConfig

    return ClosedLoopConfig(
        tier=tier,
        episodes=profile.eval_episodes,
        seed=profile.eval_seed,
        t_obs=profile.t_obs,
        t_pred=profile.t_pred,
        execute=profile.execute,
        image_size=profile.image_size,
        episode_steps=profile.episode_steps,
    )


def _compact(result: dict[str, Any]) -> dict[str, Any]:
    """A closed-loop result as stored: summary numbers plus per-episode final/min distances (not the settings)."""
    keep = ("success_rate", "strict_success_rate", "ever_within_rate", "median_final_distance", "mean_final_distance")
    out = {k: result[k] for k in keep}
    out["final_distance"] = [round(e["final_distance"], 6) for e in result["episodes"]]
    out["min_distance"] = [round(e["min_distance"], 6) for e in result["episodes"]]
    if result.get("strip"):
        out["strip"] = result["strip"]
    return out


def _references(profile: BCProfile, tier: str, windows: Any, train_seeds: range, out: Path) -> dict[str, Any]:
    """Expert, oracle and mean predictor on every tier; on a tier with the joint state, also the state-only MLP
    (see :mod:`rvperceiver.experiments.bc_references`), trained with the profile's first seed."""
    from rvperceiver.experiments.bc_references import (
        constant_predictor,
        fit_state_only,
        policy_predictor,
        predictor_nmse,
        start_window_error,
    )
    from rvperceiver.sim.closed_loop import constant_chunk_fn, policy_chunk_fn, run_closed_loop

    config = closed_loop_config(profile, tier)
    targets = windows.train.targets_array()
    mean_chunk = targets.astype(np.float64).mean(axis=0)
    strip = out / "strips" / f"{tier}_expert.png"
    expert = _compact(run_closed_loop("expert", config, train_seeds=train_seeds, label="expert", strip_path=strip,
                                      strip_episodes=profile.strip_episodes))
    if expert.get("strip"):
        expert["strip"] = str(Path(expert["strip"]).relative_to(out))
    references = {
        "expert": expert,
        "oracle": _compact(run_closed_loop("oracle", config, train_seeds=train_seeds, label="oracle")),
        "mean_predictor": _compact(
            run_closed_loop(constant_chunk_fn(mean_chunk), config, train_seeds=train_seeds, label="mean predictor")
        ),
    }
    if windows.valid is not None and len(windows.valid):
        references["mean_predictor"]["start_window_error"] = start_window_error(
            constant_predictor(mean_chunk), windows.valid)
    if tier_state_keys(tier):
        model = fit_state_only(windows.train, seed=profile.seeds[0], steps=profile.state_only_steps)
        row = _compact(run_closed_loop(policy_chunk_fn(model), config, train_seeds=train_seeds, label="state-only MLP"))
        if windows.valid is not None and len(windows.valid):
            row["valid_nmse"] = predictor_nmse(policy_predictor(model), windows.valid)
            row["start_window_error"] = start_window_error(policy_predictor(model), windows.valid)
        references["state_only"] = row
    return references


def _adaptive(windows: Any) -> dict[str, Any]:
    from rvperceiver.experiments.bc_models import FOURIER_VIEW, RAW_VIEW
    from rvperceiver.train.run import choose_view_for_windows

    start = time.perf_counter()
    choice = choose_view_for_windows(windows.train, "scalar", 4)
    view = dataclasses.asdict(choice.view)
    picked = {k: view[k] for k in RAW_VIEW}
    same = "raw_perceiver" if picked == RAW_VIEW else "fourier_perceiver" if picked == FOURIER_VIEW else None
    if same is None:  # not reachable with the default candidates; kept so a change there fails loudly
        raise ConfigError(f"bc study: the adaptive rule chose a view that is neither forced view: {picked}")
    return {"chosen": choice.chosen, "statistics": choice.statistics, "reason": choice.reason, "same_run_as": same,
            "seconds": time.perf_counter() - start}


def _train_cell(tier: str, model: str, seed: int, profile: BCProfile, work: Path, out: Path, first_seed: int,
                train_seeds: range, windows: Any, log: Any, progress: bool,
                earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one cell through every budget; at each stop score validation NMSE and the closed loop.

    With ``earlier`` (this cell's record from an earlier run whose budgets are a prefix of this profile's, see
    :func:`reusable_runs`), its scored budgets are kept and training resumes from its last checkpoint: the data
    order is a function of (seed, step) and the learning rate is constant, so this is the run a fresh start makes.
    """
    from rvperceiver.experiments.bc_references import policy_predictor, start_window_error
    from rvperceiver.sim.closed_loop import policy_chunk_fn, run_closed_loop
    from rvperceiver.train.evaluate import evaluate
    from rvperceiver.train.checkpoint import load_policy, step_checkpoint_dir
    from rvperceiver.train.loop import train

    run_dir = _run_dir(work, tier, model, seed)
    if earlier is None and run_dir.exists():
        shutil.rmtree(run_dir)
    config = cell_config(tier, model, profile, _data_path(work, tier), seed, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", to_yaml(config))
    record: dict[str, Any] = {"tier": tier, "model": model, "seed": seed, "run_dir": str(run_dir), "budgets": {}}
    train_wall = 0.0
    if earlier is not None:
        record = {**json.loads(json.dumps(earlier)), "run_dir": str(run_dir)}
        record["reused_budgets"] = sorted(int(b) for b in earlier["budgets"])
        train_wall = float(earlier["budgets"][str(max(record["reused_budgets"]))]["train_wall_s"])
        for budget, scores in record["budgets"].items():
            if "start_window_error" not in scores and windows.valid is not None:  # a record from before it existed
                stopped, _ = load_policy(step_checkpoint_dir(run_dir, int(budget)))
                scores["start_window_error"] = start_window_error(policy_predictor(stopped.eval()), windows.valid)
    for index, budget in enumerate(profile.budgets):
        if str(budget) in record["budgets"]:
            continue
        log(f"train {tier}/{model} seed {seed}: to {budget} steps")
        start = time.perf_counter()
        result = train(
            config, windows.train, windows.valid, out_dir=run_dir, resume=index > 0, progress=progress,
            stop_at_step=budget,
        )
        train_wall += time.perf_counter() - start
        policy = result.policy.eval()
        record["parameters"] = int(sum(p.numel() for p in policy.parameters()))
        score_start = time.perf_counter()
        valid = evaluate(policy, windows.valid, dataclasses.replace(config, eval_batches=0))
        start_error = start_window_error(policy_predictor(policy), windows.valid) if valid is not None else None
        strip = None
        if seed == first_seed and budget == profile.budgets[-1]:
            strip = out / "strips" / f"{tier}_{model}.png"
        closed = run_closed_loop(
            policy_chunk_fn(policy), closed_loop_config(profile, tier), train_seeds=train_seeds,
            strip_path=strip, strip_episodes=profile.strip_episodes, label=model,
        )
        compact = _compact(closed)
        if compact.get("strip"):
            compact["strip"] = str(Path(compact["strip"]).relative_to(out))
        losses = result.train_losses
        record["budgets"][str(budget)] = {
            "steps": result.step,
            "train_wall_s": train_wall,
            "score_wall_s": time.perf_counter() - score_start,
            "train_loss_last": float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else None,
            "valid": valid.to_dict() if valid is not None else {},
            "start_window_error": start_error,
            "closed_loop": compact,
        }
        log(
            f"  {tier}/{model} seed {seed} @ {budget}: success(2 cm) {closed['success_rate']:.3f}, 1 cm "
            f"{closed['strict_success_rate']:.3f}, valid NMSE {record['budgets'][str(budget)]['valid'].get('nmse', float('nan')):.3f} "
            f"({train_wall:.0f} s training so far)"
        )
    return record


_EXTENDABLE = ("budgets", "cells", "cut", "tiers")
"""Profile fields an earlier run may differ in and still be continued (every other field shapes the demos, the
references or the training of each cell, so it must be equal; a tier's demos are checked when they are reused)."""


def reusable_runs(earlier: dict[str, Any], profile: BCProfile, seeds: Sequence[int], work: Path,
                  source: str = "the earlier results") -> dict[tuple[str, str, int], dict[str, Any]]:
    """The run records of an earlier ``results.json`` that this study can continue instead of retraining.

    The earlier profile must equal this one except in budgets (its budgets a prefix of these), tiers, cells and the
    cut text (the references and the adaptive choice are recomputed: they are deterministic and take a minute). A
    record is kept when its cell is still in the profile, its seed is being run, it finished every earlier budget
    and the checkpoint of its last budget is still in ``work``. Anything else is one clear line.
    """
    from rvperceiver.train.checkpoint import checkpoint_steps, step_checkpoint_dir

    old = earlier.get("profile")
    if not isinstance(old, dict) or "budgets" not in old:
        raise ConfigError(f"{source}: no bc profile in it; expected the results.json of `rvperceiver experiment bc`")
    new = json.loads(json.dumps(dataclasses.asdict(profile), default=json_default))
    defaults = {f.name: f.default for f in dataclasses.fields(BCProfile)}
    # A field the earlier profile lacks was added to BCProfile since; it matches when this profile keeps its default.
    # A field only the earlier profile has was dropped since, and no longer shapes anything.
    differing = sorted(k for k in new if k not in _EXTENDABLE and old.get(k, defaults.get(k)) != new[k])
    if differing:
        raise ConfigError(
            f"{source}: made with profile {old.get('name')!r} differing in {', '.join(differing)}; only budgets, "
            f"tiers, cells and cut may differ for its runs to be continued"
        )
    old_budgets = [int(b) for b in old["budgets"]]
    if list(profile.budgets[: len(old_budgets)]) != old_budgets:
        raise ConfigError(
            f"{source}: its budgets {old_budgets} are not the start of this profile's {list(profile.budgets)}; "
            f"expected a prefix (a run can only be continued to larger budgets)"
        )
    cells, wanted = {tuple(c) for c in profile.cells}, {int(s) for s in seeds}
    kept: dict[tuple[str, str, int], dict[str, Any]] = {}
    for run in earlier.get("runs", []):
        key = (run["tier"], run["model"], int(run["seed"]))
        if key[:2] not in cells or key[2] not in wanted or sorted(int(b) for b in run["budgets"]) != old_budgets:
            continue
        run_dir = _run_dir(work, *key)
        steps = checkpoint_steps(run_dir)
        if old_budgets[-1] not in steps:
            raise DataError(
                f"{step_checkpoint_dir(run_dir, old_budgets[-1]).parent}: no checkpoint at step {old_budgets[-1]} to continue "
                f"{key[0]}/{key[1]} seed {key[2]} from (found steps {steps}); expected the earlier run's work directory"
            )
        kept[key] = run
    return kept


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
    out_dir: str | os.PathLike[str] = "results/bc_quick",
    seeds: Sequence[int] | None = None,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    reuse: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run the study and write ``results.json``, ``report.md``, ``commands.md`` and the pictures in ``out_dir``.

    Heavy files (demos, checkpoints) go under ``work_dir`` (default ``out_dir/work``). ``results.json`` and the
    report are rewritten after every trained cell, so a study cut short keeps what finished
    (``"complete": false``). ``reuse`` names an earlier ``results.json`` of this profile with fewer budgets
    (:func:`reusable_runs`): its runs' scored budgets are kept and they train on from their last checkpoint in
    ``work_dir``. Returns the results as written.
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
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = _Log(progress)
    commands = study_commands(prof, work, run_seeds)
    earlier: dict[str, Any] | None = None
    earlier_runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    if reuse is not None:
        try:
            earlier = json.loads(Path(reuse).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{reuse}: cannot read it as a bc results.json ({error})") from None
        earlier_runs = reusable_runs(earlier, prof, run_seeds, work, source=str(reuse))
    atomic_write_text(out / "commands.md", "".join(f"- {c['what']}:\n  `{c['command']}`\n" for c in commands))

    results: dict[str, Any] = {
        "study": "bc",
        "complete": False,
        "profile": dataclasses.asdict(prof),
        "seeds": list(run_seeds),
        "command": f"rvperceiver experiment bc --profile {prof.name} --out {shown_out}"
        + (f" --seeds {','.join(map(str, run_seeds))}" if seeds is not None else "")
        + (f" --work {work_dir}" if work_dir is not None else "")
        + (f" --reuse {reuse}" if reuse is not None else ""),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "data": {},
        "adaptive_choice": {},
        "references": {},
        "runs": [],
        "commands": commands,
    }
    if earlier is not None:
        results["reused_from"] = {
            "path": str(reuse), "command": earlier.get("command"), "date": earlier.get("date"),
            "budgets": earlier["profile"]["budgets"], "runs": len(earlier_runs),
        }

    def write(complete: bool) -> None:
        results["complete"] = complete
        results["summary"] = summarise(results)
        results["wall_time_s"] = time.perf_counter() - started
        atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=json_default) + "\n")
        atomic_write_text(out / "report.md", render_report(results))

    from rvperceiver.sim.generate import training_seed_range

    windows_by_tier: dict[str, Any] = {}
    train_seeds_by_tier: dict[str, range] = {}
    for tier in prof.tiers:
        train_path, test_path = _data_path(work, tier), _data_path(work, tier, test=True)
        log(f"{tier}: demos -> {train_path}")
        results["data"][tier] = {
            "train": _ensure_demos(train_path, tier, prof.n_demos, prof.demo_seed, prof, prof.valid_fraction, progress),
            "test": _ensure_demos(test_path, tier, prof.n_test_demos, prof.test_seed, prof, 0.0, progress),
        }
        windows = load_windows(train_path, ee_key=SETPOINT_KEY, t_obs=prof.t_obs, t_pred=prof.t_pred,
                               valid_fraction=prof.valid_fraction, state_keys=tier_state_keys(tier))
        windows_by_tier[tier] = windows
        train_seeds = training_seed_range(open_episodes(train_path).meta.get("env_args") or {})
        test_seeds = range(prof.test_seed, prof.test_seed + prof.n_test_demos)
        train_seeds_by_tier[tier] = train_seeds
        results["data"][tier]["train_windows"] = len(windows.train)
        results["data"][tier]["valid_windows"] = len(windows.valid or [])
        log(f"{tier}: references (expert, oracle, mean predictor) on {prof.eval_episodes} evaluation seeds")
        results["references"][tier] = _references(prof, tier, windows, train_seeds, out)
        from rvperceiver.sim.closed_loop import check_seed_overlap

        check_seed_overlap(range(prof.eval_seed, prof.eval_seed + prof.eval_episodes), test_seeds)
        if any(model in ("raw_perceiver", "fourier_perceiver") for t, model in prof.cells if t == tier):
            results["adaptive_choice"][tier] = _adaptive(windows)
            log(f"{tier}: adaptive rule: {results['adaptive_choice'][tier]['reason']}")
        write(False)

    for seed in run_seeds:
        for tier, model in prof.cells:
            record = _train_cell(tier, model, seed, prof, work, out, run_seeds[0], train_seeds_by_tier[tier],
                                 windows_by_tier[tier], log, progress, earlier=earlier_runs.get((tier, model, seed)))
            results["runs"].append(record)
            write(False)

    from rvperceiver.experiments.bc_plots import plot_all

    results["figures"] = plot_all(results, out)
    write(True)
    log(f"done in {results['wall_time_s']:.0f} s: {out / 'report.md'}")
    return results


def _finished_seeds_only(part: dict[str, Any], cells: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A part that stopped early keeps only the training seeds whose every cell ran to the last budget."""
    if part.get("complete"):
        return part
    budgets = len(part["profile"]["budgets"])
    finished = {(r["tier"], r["model"], r["seed"]) for r in part["runs"] if len(r["budgets"]) == budgets}
    seeds = [seed for seed in part["seeds"] if all((tier, model, seed) in finished for tier, model in cells)]
    return {**part, "seeds": seeds, "runs": [r for r in part["runs"] if r["seed"] in seeds]}


def merge_results(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One study from runs of the same profile on disjoint training seeds (e.g. one process per seed).

    The references and the adaptive choice depend on the demos and the evaluation seeds only, so every part must
    agree on them; the runs are concatenated in seed order.
    """
    if not parts:
        raise ConfigError("merge_results: nothing to merge")
    base = json.loads(json.dumps(parts[0], default=json_default))
    for other in parts[1:]:
        if other["profile"] != base["profile"]:
            raise ConfigError("merge_results: the parts were run with different profiles")
        if json.dumps(other["references"], sort_keys=True) != json.dumps(base["references"], sort_keys=True):
            raise ConfigError("merge_results: the parts' references differ (different demos or evaluation seeds?)")
    cells = [tuple(c) for c in base["profile"]["cells"]]
    parts = [_finished_seeds_only(part, cells) for part in parts]
    seeds = [seed for part in parts for seed in part["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"merge_results: training seeds overlap between the parts: {seeds}")
    runs = sorted((run for part in parts for run in part["runs"]), key=lambda r: r["seed"])
    done = {(r["tier"], r["model"], r["seed"]) for r in runs if len(r["budgets"]) == len(base["profile"]["budgets"])}
    base.update(
        seeds=sorted(seeds),
        runs=runs,
        command=" && ".join(part["command"] for part in parts),
        merged_from=[{"command": p["command"], "date": p["date"], "wall_time_s": p.get("wall_time_s"),
                      "complete": p.get("complete"), "machine": p.get("machine")} for p in parts],
        wall_time_s=max(p.get("wall_time_s") or 0.0 for p in parts),
    )
    base["complete"] = all((tier, model, seed) in done for seed in seeds for tier, model in cells)
    base["summary"] = summarise(base)
    return base


def write_merged(part_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Merge the ``results.json`` of ``part_dirs`` into ``out_dir`` (results, report, pictures, strips)."""
    from rvperceiver.experiments.bc_plots import plot_all

    parts = [json.loads((Path(d) / "results.json").read_text(encoding="utf-8")) for d in part_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for d in part_dirs:  # the strips each part wrote
        for strip in (Path(d) / "strips").glob("*.png") if (Path(d) / "strips").exists() else []:
            (out / "strips").mkdir(exist_ok=True)
            shutil.copy2(strip, out / "strips" / strip.name)
    merged = merge_results(parts)
    merged["figures"] = plot_all(merged, out)
    atomic_write_text(out / "results.json", json.dumps(merged, indent=1, default=json_default) + "\n")
    atomic_write_text(out / "report.md", render_report(merged))
    commands = [c for p in parts for c in p.get("commands", [])]
    unique = list({c["command"]: c for c in commands}.values())
    atomic_write_text(out / "commands.md", "".join(f"- {c['what']}:\n  `{c['command']}`\n" for c in unique))
    return merged


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled, self.start = enabled, time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%H:%M:%S")
            print(f"[bc {stamp} +{time.perf_counter() - self.start:5.0f} s] {message}", flush=True)
