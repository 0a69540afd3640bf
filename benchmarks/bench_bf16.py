"""bf16 autocast on CPU: training-step time against float32, and a short training curve under each.

    python benchmarks/bench_bf16.py [--mode quick|full|smoke] [--threads 2] [--out FILE.json]

Step time: the benchmark model (`common.ModelShape`, batch `mode.batch`) in the seed layout and the frame-grid
layout, float32 and `torch.autocast("cpu", dtype=torch.bfloat16)` timed in alternation in one process. Under
autocast only the matrix products and attention run in bf16: the view's transforms and normalisation, the
LayerNorm statistics and the encoder's normalised tokens stay float32 (the model and views switch autocast off
there), and the loss is taken in float32.

Training curve (`--curve`): a localisation task that a Perceiver learns within a few hundred steps: each
32×32×3 image holds one Gaussian blob on a noisy background and the target is the blob's (row, column) centre;
scalar tokens (3,072 per image) through the project's `Policy` (view + Perceiver IO, 64 latents × 128), Adam, the
same seeds, data and initialisation under each precision; the validation MSE (normalised targets) is printed per
evaluation, with the per-seed difference of the final value. Decision rule, written before the run: bf16 is
offered as a training option only when its step is faster in every repetition and its final validation MSE is
within 10 % of float32's for every seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from benchmarks.bench_vs_perceiver_pytorch import build_ours  # noqa: E402
from benchmarks.common import MODES, Mode, Variant, format_table, median, spread, time_alternating  # noqa: E402

CURVE_SIZES = {"full": (32, 600, 3), "quick": (32, 300, 3), "smoke": (12, 6, 2)}  # image size, steps, seeds


def time_steps(mode: Mode) -> list[dict[str, Any]]:
    h, w, c = mode.frame
    layouts = {"seed [B, N, 1]": ((mode.tokens,), float(mode.tokens)), f"frame (1, {h}, {w}, {c})": ((1, h, w, c), float(max(h, w)))}
    rows, results = [], []
    for name, (grid, max_freq) in layouts.items():
        steps = {
            precision: build_ours(list(grid), mode.batch, mode.model, Variant("cpu", bf16=precision == "bf16"),
                                  max_freq)[1]
            for precision in ("fp32", "bf16")
        }
        times = time_alternating(steps, mode.warmup, mode.reps, "cpu")
        del steps
        fp32, bf16 = median(times["fp32"]), median(times["bf16"])
        faster_every_time = all(b < f for f, b in zip(times["fp32"], times["bf16"]))
        results.append({"layout": name, "step_s_fp32": fp32, "step_s_bf16": bf16, "speedup": fp32 / bf16,
                        "step_s_all_fp32": times["fp32"], "step_s_all_bf16": times["bf16"],
                        "faster_in_every_rep": faster_every_time})
        rows.append([name, fp32, bf16, fp32 / bf16, spread(times["fp32"]), spread(times["bf16"]), faster_every_time])
    print(f"\n## bf16 autocast vs float32 on CPU: training step (batch {mode.batch}, {mode.tokens} tokens, "
          f"{mode.warmup} warm-up + {mode.reps} alternating reps, median)")
    print(format_table(["layout", "fp32 s", "bf16 s", "speed-up", "spread fp32", "spread bf16",
                        "faster in every rep"], rows))
    return results


def blob_task(num_examples: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images `[M, 1, size, size, 3]` in [0, 1], each one Gaussian blob (σ = size/10) on noise; targets `[M, 1, 2]`
    the blob centre in pixels (row, column)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(num_examples, 2, generator=generator) * (size - 8) + 4
    rows = torch.arange(size, dtype=torch.float32)
    distance = (rows[None, :, None] - centres[:, 0, None, None]) ** 2 + (rows[None, None, :] - centres[:, 1, None, None]) ** 2
    blob = torch.exp(-distance / (2 * (size / 10) ** 2))
    colour = 0.5 + 0.5 * torch.rand(num_examples, 1, 1, 3, generator=generator)
    images = 0.2 * torch.rand(num_examples, size, size, 3, generator=generator) + 0.7 * blob[..., None] * colour
    return images.clamp(0, 1)[:, None], centres[:, None, :]


def _validation_mse(policy: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> float:
    policy.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        prediction = policy(x).float()
    policy.train()
    return float(torch.nn.functional.mse_loss(prediction, policy.target_norm.normalize(y)))


def training_curves(mode: Mode) -> dict[str, Any]:
    from rvperceiver.model import PerceiverConfig
    from rvperceiver.model.policy import Policy, PolicyConfig
    from rvperceiver.views.view import ViewConfig

    size, steps, seeds = CURVE_SIZES[mode.name]
    train_x, train_y = blob_task(512, size, seed=1000)
    valid_x, valid_y = blob_task(128, size, seed=2000)
    small = mode.name == "smoke"
    perceiver = PerceiverConfig(num_latents=8 if small else 64, latent_channels=16 if small else 128,
                                self_heads=2 if small else 4, self_layers_per_block=1 if small else 2, num_bands=8)
    config = PolicyConfig(view=ViewConfig(pre_norm="zscore"), perceiver=perceiver)
    every = max(steps // 6, 1)
    eval_steps = list(range(every, steps + 1, every))
    curves: dict[str, dict[int, list[float]]] = {"fp32": {}, "bf16": {}}
    for seed in range(seeds):
        for precision in ("fp32", "bf16"):
            bf16 = precision == "bf16"
            torch.manual_seed(seed)
            policy = Policy(config, train_x.shape[1:], train_y.shape[1:])
            policy.fit_statistics([train_x], train_y)
            optimiser = torch.optim.Adam(policy.parameters(), lr=1e-3)
            order = torch.Generator().manual_seed(seed)
            curve = []
            for step in range(1, steps + 1):
                batch = torch.randint(0, len(train_x), (16,), generator=order)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    prediction = policy(train_x[batch])
                loss = torch.nn.functional.mse_loss(prediction.float(), policy.target_norm.normalize(train_y[batch]))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                if step in eval_steps:
                    curve.append(_validation_mse(policy, valid_x, valid_y, bf16))
            curves[precision][seed] = curve
    rows, finals = [], []
    for seed in range(seeds):
        fp32, bf16 = curves["fp32"][seed], curves["bf16"][seed]
        finals.append((fp32[-1], bf16[-1]))
        rows.append([seed, *(f"{a:.4f}/{b:.4f}" for a, b in zip(fp32, bf16)), (bf16[-1] - fp32[-1]) / fp32[-1]])
    print(f"\n## Training curve, fp32/bf16 validation MSE (normalised targets) by step; blob task {size}×{size}×3, "
          f"{steps} steps, batch 16, {seeds} seeds")
    print(format_table(["seed", *(f"step {s}" for s in eval_steps), "final bf16 vs fp32"], rows))
    return {"steps": steps, "image_size": size, "seeds": seeds, "eval_steps": eval_steps,
            "valid_mse": {p: {str(s): v for s, v in c.items()} for p, c in curves.items()},
            "final_relative_difference": [(b - f) / f for f, b in finals]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("--curve", action="store_true", help="also the training curves (slow where bf16 is)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mode = MODES[args.mode]
    result: dict[str, Any] = {"steps": time_steps(mode)}
    if args.curve:
        result["curve"] = training_curves(mode)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
