"""How much of the arm-hidden setpoint chunks can be predicted without looking at the frames at all?

On the ``arm-hidden`` tier a policy gets the joint state (angles, velocities) beside a frame in which only the
target dot is drawn. The next ``t_pred`` setpoints depend on where the arm is (in the state) and on where the
target is (only in the frame). A predictor of the state alone therefore reaches some validation NMSE without
knowing the target; a model whose NMSE is near that figure has not used the frame, however low the figure is.

This script fits two *state-only* predictors on the BC study's arm-hidden windows (same demos, same split, same
target: ``robot0_eef_setpoint``, t_obs 1, t_pred 8) — least squares on ``[state, 1]`` and a small MLP (per training
seed) — and reports their validation NMSE with the project's own metric, then runs the MLP through the study's
closed loop (200 evaluation episodes, the tracker, execute 8 of 8). Compare with the study's rows: a learned model
is using the image only where its NMSE is clearly below the state-only one and its success above the floor.

The windows that need the frame are the first of each episode: the arm is at rest, so the state says nothing about
where it will go. ``--checkpoints RUN_DIR ...`` scores the study's trained policies (and the state-only MLP and
the mean predictor) on exactly those: the distance between the predicted and the demonstrated last setpoint of the
chunk at step 0 of each validation episode.

    PYTHONPATH=src MUJOCO_GL=egl python benchmarks/bc_state_only.py [--data DEMOS.hdf5] [--seeds 0,1,2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

STATE_KEYS = ("robot0_joint_pos", "robot0_joint_vel")
SETPOINT_KEY = "robot0_eef_setpoint"


def _arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(states [n, t_obs*4], targets [n, t_pred*3]) of every window of ``dataset``."""
    states, targets = [], []
    for x, y in dataset:
        states.append(np.asarray(x["observation.state"], dtype=np.float64).reshape(-1))
        targets.append(np.asarray(y, dtype=np.float64).reshape(-1))
    return np.stack(states), np.stack(targets)


def _nmse(prediction: np.ndarray, target: np.ndarray) -> float:
    from rvperceiver.train.metrics import MetricAccumulator

    acc = MetricAccumulator(target.shape[1])
    p, t = torch.from_numpy(prediction), torch.from_numpy(target)
    acc.update(p, t, p, t)
    return acc.compute().nmse


class _StateMLP(torch.nn.Module):
    def __init__(self, inputs: int, outputs: int, mean: np.ndarray, std: np.ndarray, y_mean: np.ndarray,
                 y_std: np.ndarray, width: int = 128) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(inputs, width), torch.nn.GELU(), torch.nn.Linear(width, width),
                                       torch.nn.GELU(), torch.nn.Linear(width, outputs))
        for name, value in (("x_mean", mean), ("x_std", std), ("y_mean", y_mean), ("y_std", y_std)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net((state - self.x_mean) / self.x_std) * self.y_std + self.y_mean


def _fit_mlp(x: np.ndarray, y: np.ndarray, seed: int, steps: int) -> _StateMLP:
    torch.manual_seed(seed)
    model = _StateMLP(x.shape[1], y.shape[1], x.mean(0), x.std(0) + 1e-6, y.mean(0), y.std(0) + 1e-6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, len(xs), (256,), generator=generator)
        loss = (((model(xs[batch]) - ys[batch]) / model.y_std) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="arm-hidden demos (default: generate the BC study's 200, seed 0)")
    parser.add_argument("--seeds", default="0,1,2", help="MLP training seeds")
    parser.add_argument("--steps", type=int, default=3000, help="MLP Adam steps of batch 256")
    parser.add_argument("--episodes", type=int, default=200, help="closed-loop episodes (env seeds 100000 …)")
    parser.add_argument("--checkpoints", nargs="*", default=[], metavar="RUN_DIR",
                        help="trained policies (e.g. the study's work/runs/arm-hidden/*) to score on the start windows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    from rvperceiver.data.formats import open_episodes
    from rvperceiver.data.loading import load_windows
    from rvperceiver.sim.closed_loop import ClosedLoopConfig, run_closed_loop
    from rvperceiver.sim.generate import generate_to_file, training_seed_range
    from rvperceiver.experiments.statistics import wilson_interval

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "arm_hidden.hdf5"
        if args.data is None:
            generate_to_file(data, 200, 0, image_size=64, valid_fraction=0.1, progress=False, tier="arm-hidden")
        windows = load_windows(data, ee_key=SETPOINT_KEY, t_obs=1, t_pred=8, valid_fraction=0.1, state_keys=STATE_KEYS)
        train_seeds = training_seed_range(open_episodes(data).meta.get("env_args") or {})
        x_train, y_train = _arrays(windows.train)
        x_valid, y_valid = _arrays(windows.valid)

        design = np.hstack([x_train, np.ones((len(x_train), 1))])
        coef, *_ = np.linalg.lstsq(design, y_train, rcond=None)
        linear = _nmse(np.hstack([x_valid, np.ones((len(x_valid), 1))]) @ coef, y_valid)
        rows: dict[str, Any] = {"windows": {"train": len(x_train), "valid": len(x_valid)},
                                "linear_valid_nmse": linear, "mlp": []}
        config = ClosedLoopConfig(tier="arm-hidden", episodes=args.episodes, t_obs=1, t_pred=8, execute=8)
        models = []
        for seed in seeds:
            start = time.perf_counter()
            model = _fit_mlp(x_train, y_train, seed, args.steps)
            models.append(model)
            with torch.no_grad():
                valid = _nmse(model(torch.as_tensor(x_valid, dtype=torch.float32)).double().numpy(), y_valid)

            def chunk_fn(batch: Any, model: _StateMLP = model) -> np.ndarray:
                state = torch.as_tensor(np.asarray(batch["observation.state"]), dtype=torch.float32).reshape(
                    len(batch["observation.state"]), -1)
                with torch.no_grad():
                    return model(state).double().numpy().reshape(len(state), 8, 3)

            chunk_fn.uses_state = True  # type: ignore[attr-defined]
            closed = run_closed_loop(chunk_fn, config, train_seeds=train_seeds, label="state-only MLP")
            rows["mlp"].append({"seed": seed, "valid_nmse": valid, "success_2cm": closed["success_rate"],
                                "success_1cm": closed["strict_success_rate"], "ever_2cm": closed["ever_within_rate"],
                                "median_final_distance_m": closed["median_final_distance"],
                                "seconds": time.perf_counter() - start})

        start_items = [i for i, (_, begin) in enumerate(windows.valid.index.pairs) if begin == 0]
        x_start = x_valid[start_items]
        end_start = y_valid[start_items].reshape(len(start_items), 8, 3)[:, -1, :2]

        def start_error(chunks: np.ndarray) -> float:
            return float(np.mean(np.linalg.norm(chunks.reshape(len(start_items), 8, 3)[:, -1, :2] - end_start, axis=1)))

        starts: dict[str, float] = {"mean predictor": start_error(np.broadcast_to(y_train.mean(0), (len(x_start), 24)))}
        with torch.no_grad():
            starts[f"state-only MLP (seed {seeds[0]})"] = start_error(
                models[0](torch.as_tensor(x_start, dtype=torch.float32)).double().numpy())
        from rvperceiver.train.checkpoint import load_policy

        for run in args.checkpoints:
            policy, _ = load_policy(run)
            batch = [windows.valid[i][0] for i in start_items]
            inputs = {key: torch.stack([b[key] for b in batch]) for key in batch[0]} if isinstance(batch[0], dict) \
                else torch.stack(batch)
            starts[Path(run).name] = start_error(policy.predict_chunk(inputs).double().numpy())
        rows["start_window_final_setpoint_error_m"] = starts

    k = sum(round(r["success_2cm"] * args.episodes) for r in rows["mlp"])
    n = args.episodes * len(rows["mlp"])
    lo, hi = wilson_interval(k, n)
    rows["pooled_success_2cm"] = {"k": k, "n": n, "lo": lo, "hi": hi}
    print(f"\n## State-only predictors on arm-hidden ({rows['windows']['train']} train / {rows['windows']['valid']} "
          f"valid windows; target {SETPOINT_KEY}, t_obs 1, t_pred 8)")
    print(f"least squares on [state, 1]: valid NMSE {linear:.3f}")
    print("| MLP seed | valid NMSE | success ≤ 2 cm | ≤ 1 cm | ever ≤ 2 cm | median final (mm) |")
    print("|---|---|---|---|---|---|")
    for r in rows["mlp"]:
        print(f"| {r['seed']} | {r['valid_nmse']:.3f} | {100 * r['success_2cm']:.1f}% | {100 * r['success_1cm']:.1f}% | "
              f"{100 * r['ever_2cm']:.1f}% | {1000 * r['median_final_distance_m']:.1f} |")
    print(f"pooled success ≤ 2 cm: {k}/{n} = {100 * k / n:.1f}% [Wilson 95% {100 * lo:.1f}, {100 * hi:.1f}]")
    print(f"\n## Start windows ({len(start_items)} validation episodes, arm at rest): predicted vs demonstrated last "
          "setpoint of the first chunk")
    print("| predictor | mean error (mm) |")
    print("|---|---|")
    for name, error in rows["start_window_final_setpoint_error_m"].items():
        print(f"| {name} | {1000 * error:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
