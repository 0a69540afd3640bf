"""Cost of the seed's preprocessing (tokenise → centre → rfft → z-score) as a share of a training step.

The view runs inside every training step (it is the first module of the policy), so its cost is paid per batch.
Two transforms of the same 12,288 scalar tokens of a 64×64×3 frame: `flat` (the seed's 1-D rfft over the
flattened token axis) and `grid` (separable N-D rfft over the (T, H, W, C) token grid). The share is the view's
forward time over the time of the whole training step (view + Perceiver forward + backward + AdamW) that contains
it; view calls and training steps are each timed in alternation between the two transforms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmarks.bench_vs_perceiver_pytorch import our_config
from benchmarks.common import (
    Mode,
    Variant,
    format_table,
    make_train_step,
    median,
    standard_main,
    time_alternating,
)
from rvperceiver.model import PerceiverIO
from rvperceiver.views import InputView, ViewConfig


def _frames(mode: Mode, count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 1, *mode.frame), generator=generator, dtype=torch.uint8)


def build_view(mode: Mode, axes: str, device: str, seed: int = 0) -> InputView:
    """The seed's view, fitted on a few random frame batches (statistics only shift and scale; cost is the same)."""
    config = ViewConfig(token_mode="scalar", transform="rfft", transform_axes=axes, pre_norm="centre",
                        post_norm="zscore")
    view = InputView(config, (1, *mode.frame))
    view.fit([_frames(mode, mode.batch, seed + i) for i in range(2)])
    return view.to(device)


def run(mode: Mode, variant: Variant, threads: int = 2) -> dict[str, Any]:
    device = variant.device
    frames = _frames(mode, mode.batch, seed=123).to(device)
    targets = torch.randn(mode.batch, mode.model.output_steps, mode.model.output_channels).to(device)
    views, steps = {}, {}
    for axes in ("flat", "grid"):
        view = build_view(mode, axes, device)
        torch.manual_seed(0)
        backbone = PerceiverIO(our_config(mode.model, None), view.out_channels, view.grid_shape).to(device)
        policy = nn.Sequential(view, backbone)
        views[axes] = (lambda v=view: v(frames))
        steps[axes] = make_train_step(policy, policy, frames, targets, variant)
    view_times = time_alternating(views, mode.warmup, mode.view_reps, device)
    step_times = time_alternating(steps, mode.warmup, mode.reps, device)
    rows, per_axes = [], {}
    for axes in ("flat", "grid"):
        view_s, step_s = median(view_times[axes]), median(step_times[axes])
        per_axes[axes] = {
            "view_s": view_s,
            "step_s": step_s,
            "view_s_all": view_times[axes],
            "step_s_all": step_times[axes],
            "share_of_step": view_s / step_s,
        }
        rows.append([f"rfft {axes}", view_s * 1e3, step_s * 1e3, view_s / step_s])
    print(f"\n## Preprocessing share of a training step ({variant.label}, batch {mode.batch}, {mode.tokens} tokens, "
          f"view {mode.view_reps} reps, step {mode.reps} reps, medians)")
    print(format_table(["view", "view ms", "train step ms", "share of step"], rows))
    return {
        "variant": variant.label,
        "batch": mode.batch,
        "tokens": mode.tokens,
        "per_axes": per_axes,
        "preprocess_share_of_step": max(v["share_of_step"] for v in per_axes.values()),
    }


def main() -> None:
    standard_main(__doc__, run)


if __name__ == "__main__":
    main()
