"""Kill -9 a CPU training run at random moments, resume it, and check that nothing was lost.

    python benchmarks/kill_resume.py --kills 10 --out kill_resume.json [--seed 0] [--steps N]

What it does:

1. writes a tiny robomimic dataset and trains an uninterrupted reference run through the real CLI
   (``python -m rvperceiver.cli train --config configs/tiny.yaml ...``), with a checkpoint after every step so
   that checkpoint writes take a large share of the run's time;
2. starts the same run again in another directory and ``SIGKILL``s it ``--kills`` times at random (seeded)
   moments: a quarter of the kills at a uniform time since launch within the reference's start-up time
   (imports, data loading, statistics, metrics rewrite — or early training), the rest at a uniform delay after
   the new process has logged a training step — many of those hit a checkpoint write (after the kill,
   ``checkpoints/<step>.tmp/`` or ``<step>.deleting/`` is left behind, or ``last`` still names the step before
   the newest; counted);
3. after every kill, checks that the checkpoint on disk loads (``load_policy`` + ``load_training_state``) and
   that its step never went backwards, then restarts with ``--resume`` (or afresh when no checkpoint was
   written yet, exactly what a job script would do);
4. once the run finishes, compares the final weights, optimizer/RNG state and the logged metrics bit for bit
   with the reference run.

No hooks in the library: the kills are real ``kill -9`` of real processes. Each restart pays the Python/torch
start-up (seconds), so ``--kills 10`` takes a few minutes on a small machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = REPO_ROOT / "configs" / "tiny.yaml"
LAUNCH_KILL_FRACTION = 0.25


def write_dataset(path: Path, episodes: int = 4, length: int = 16) -> Path:
    """A small fixed dataset (independent of --seed, which only drives the kill times)."""
    import numpy as np

    from rvperceiver.data.episodes import Episode
    from rvperceiver.data.robomimic import write_robomimic

    rng = np.random.default_rng(0)
    demos = []
    for i in range(episodes):
        frames = rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8)
        ee = np.cumsum(rng.normal(size=(length, 3)).astype(np.float32) * 0.01, axis=0)
        demos.append(Episode(f"demo_{i}", frames, ee))
    return write_robomimic(path, demos, overwrite=True)


def train_command(data: Path, out: Path, steps: int, resume: bool) -> list[str]:
    command = [
        sys.executable, "-m", "rvperceiver.cli", "train", "--config", str(CONFIG),
        f"data.path={data}", f"steps={steps}", "checkpoint_every=1", "log_every=1", "eval_every=5",
        "data.stats_cache=false", "seed=0", "--out", str(out), "--quiet",
    ]
    return command + (["--resume"] if resume else [])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")  # same in every run
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def read_records(metrics: Path) -> list[dict[str, Any]]:
    """The parsable lines of metrics.jsonl (a line being appended right now may be partial)."""
    records = []
    try:
        text = metrics.read_text(encoding="utf-8")
    except OSError:
        return records
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def checkpoint_state(out: Path) -> dict[str, Any]:
    """What is on disk now, and whether it loads: {"dirs": [...], "step": int|None, "last": int|None, "error": ...}."""
    from rvperceiver.errors import CheckpointError
    from rvperceiver.train.checkpoint import load_policy, load_training_state, read_checkpoint_meta

    root = out / "checkpoints"
    dirs = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    state: dict[str, Any] = {"dirs": dirs, "step": None, "last": None, "error": None}
    if not any(name.isdigit() for name in dirs):
        return state
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_policy(out)
            training = load_training_state(out)
            meta_step = int(read_checkpoint_meta(out)["step"])
            if (root / "last").is_symlink() or (root / "last").exists():
                state["last"] = int(read_checkpoint_meta(root / "last")["step"])  # the pointer must load too
        if training.step != meta_step:
            raise CheckpointError(f"training state step {training.step} != training_step.json step {meta_step}")
        state["step"] = meta_step
    except Exception as error:  # anything at all: this is exactly what the benchmark is looking for
        state["error"] = f"{type(error).__name__}: {error}"
    return state


def wait_for_new_step(
    process: subprocess.Popen[bytes], metrics: Path, after_step: int, launched_ns: int, timeout: float
) -> bool:
    """Block until THIS process logs a training step beyond ``after_step`` (True) or exits (False).

    Lines a killed predecessor logged past its last checkpoint are still in the file until the new process
    drops them (it rewrites or truncates the file at start-up), so only a file modified after the launch counts;
    its modification time is read before its content, so the content is at least that recent.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            fresh = metrics.stat().st_mtime_ns > launched_ns
        except OSError:
            fresh = False
        if fresh and any(r.get("kind") == "train" and r.get("step", 0) > after_step for r in read_records(metrics)):
            return True
        time.sleep(0.01)
    raise TimeoutError(f"no training step beyond {after_step} within {timeout:.0f} s")


def compare_runs(reference: Path, resumed: Path) -> dict[str, bool]:
    """Bitwise comparison of the two final checkpoints and of the logged training/eval metrics (speed fields aside)."""
    from safetensors.numpy import load_file

    from rvperceiver.train.metrics_log import TIMING_KEYS

    def same_tensors(name: str) -> bool:
        a, b = load_file(reference / "checkpoints" / "last" / name), load_file(resumed / "checkpoints" / "last" / name)
        return a.keys() == b.keys() and all(
            a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a
        )

    def metrics(run: Path) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r.items() if k not in TIMING_KEYS}
            for r in read_records(run / "metrics.jsonl")
            if r.get("kind") in ("train", "eval")
        ]

    return {
        "bit_identical": same_tensors("pretrained_model/model.safetensors"),
        "training_state_identical": same_tensors("training_state/training_state.safetensors"),
        "metrics_identical": metrics(reference) == metrics(resumed),
    }


def run_benchmark(kills: int, seed: int, steps: int, workdir: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    env = child_env()
    data = write_dataset(workdir / "demos.hdf5")

    # 1. The uninterrupted reference, timed to size the kill delays.
    reference = workdir / "reference"
    started = time.perf_counter()
    done = subprocess.run(train_command(data, reference, steps, False), env=env, capture_output=True)
    reference_wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    train_records = [r for r in read_records(reference / "metrics.jsonl") if r.get("kind") == "train"]
    train_seconds = max(r["elapsed_s"] for r in train_records)
    startup_seconds = max(reference_wall - train_seconds, 0.5)
    # Mean delay = half the reference's training time per kill, so the kills spread over the whole run.
    max_delay = max(train_seconds / kills, 0.02)

    # 2-3. The killed run.
    out = workdir / "killed"
    log = open(workdir / "killed.log", "ab")
    attempts: list[dict[str, Any]] = []
    unreadable = regressions = 0
    last_step = 0
    finished = False
    failure: str | None = None
    while len(attempts) < kills and not finished:
        state = checkpoint_state(out)
        resume = state["step"] is not None
        launched, launched_ns = time.perf_counter(), time.time_ns()
        process = subprocess.Popen(train_command(data, out, steps, resume), env=env, stdout=log, stderr=log)
        phase = "from_launch" if rng.random() < LAUNCH_KILL_FRACTION else "after_step"
        if phase == "from_launch":
            time.sleep(rng.uniform(0.0, startup_seconds))
        elif wait_for_new_step(process, out / "metrics.jsonl", last_step, launched_ns, timeout=300):
            time.sleep(rng.uniform(0.0, max_delay))
        if process.poll() is not None:  # finished (or failed) before the kill landed
            finished = process.returncode == 0
            if not finished:
                failure = f"attempt {len(attempts) + 1} exited with status {process.returncode}; see killed.log"
                break
            continue
        process.send_signal(signal.SIGKILL)
        process.wait()
        after = checkpoint_state(out)
        record = {
            "attempt": len(attempts) + 1,
            "resumed": resume,
            "phase": phase,
            "killed_after_s": round(time.perf_counter() - launched, 3),
            "dirs_left": after["dirs"],
            "mid_checkpoint_write": any(name.endswith((".tmp", ".deleting")) for name in after["dirs"])
            or (after["last"] is not None and after["step"] is not None and after["last"] < after["step"]),
            "checkpoint_step": after["step"],
            "last_step": after["last"],
            "error": after["error"],
        }
        if after["error"] is not None or (after["step"] is None and last_step > 0):
            unreadable += 1  # a checkpoint that was there is gone or does not load: the run would be lost
            record["error"] = record["error"] or "no checkpoint left"
        elif after["step"] is not None:
            if after["step"] < last_step:
                regressions += 1
            last_step = after["step"]
        attempts.append(record)
        print(f"kill {record['attempt']}: {phase:11s} after {record['killed_after_s']:6.2f} s -> checkpoint step "
              f"{record['checkpoint_step']} {record['dirs_left']}{'  ERROR ' + record['error'] if record['error'] else ''}",
              flush=True)

    # 4. Let it finish, then compare with the reference.
    if not finished and failure is None:
        resume = checkpoint_state(out)["step"] is not None
        final = subprocess.run(train_command(data, out, steps, resume), env=env, stdout=log, stderr=log)
        if final.returncode != 0:
            failure = f"final resume exited with status {final.returncode}; see killed.log"
    log.close()
    final_state = checkpoint_state(out)
    comparison = (
        compare_runs(reference, out)
        if failure is None and final_state["step"] == steps
        else {"bit_identical": False, "training_state_identical": False, "metrics_identical": False}
    )
    return {
        "kills": len(attempts),
        "kills_requested": kills,
        "kills_timed_from_launch": sum(a["phase"] == "from_launch" for a in attempts),
        "kills_after_a_new_step": sum(a["phase"] == "after_step" for a in attempts),
        "kills_mid_checkpoint_write": sum(a["mid_checkpoint_write"] for a in attempts),
        "kills_before_the_last_pointer_moved": sum(
            a["last_step"] is not None and a["checkpoint_step"] is not None and a["last_step"] < a["checkpoint_step"]
            for a in attempts
        ),
        "survived": failure is None and final_state["step"] == steps and unreadable == 0 and regressions == 0,
        **comparison,
        "unreadable_checkpoints": unreadable,
        "step_regressions": regressions,
        "final_step": final_state["step"],
        "steps": steps,
        "seed": seed,
        "failure": failure,
        "reference_wall_s": round(reference_wall, 2),
        "reference_train_s": round(train_seconds, 2),
        "max_kill_delay_after_step_s": round(max_delay, 3),
        "attempts": attempts,
        "command": train_command(data, out, steps, True)[1:],
        "python": platform.python_version(),
        "torch": __import__("torch").__version__,
        "machine": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, required=True, help="how many times to kill -9 the run")
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 20 + 8 per kill)")
    parser.add_argument("--workdir", default=None, help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    steps = args.steps if args.steps is not None else 20 + 8 * args.kills
    sys.path.insert(0, str(REPO_ROOT / "src"))
    if args.workdir is not None:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run_benchmark(args.kills, args.seed, steps, workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="kill_resume_") as tmp:
            result = run_benchmark(args.kills, args.seed, steps, Path(tmp))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    summary = {k: result[k] for k in ("kills", "kills_mid_checkpoint_write", "survived", "bit_identical",
                                      "training_state_identical", "metrics_identical", "unreadable_checkpoints")}
    print(json.dumps(summary))
    return 0 if result["survived"] and result["bit_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
