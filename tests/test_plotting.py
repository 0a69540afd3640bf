"""The pictures: learning curve from metrics.jsonl, labelled rollout strip, the demo's table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from rvperceiver.plotting import plot_demo_table, plot_learning_curve, plot_rollout_strip, world_to_pixel


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_learning_curve_from_the_metrics_log(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    lines = [{"kind": "start", "step": 0}]
    lines += [{"kind": "train", "step": s, "loss": 1.0 / s, "lr": 1e-3} for s in range(1, 21)]
    lines += [{"kind": "eval", "step": s, "loss": 0.5, "nmse": 1.0 - s / 40, "verdict": "partial"} for s in (10, 20)]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n{torn")
    out = plot_learning_curve(log, tmp_path / "curve.png", title="run")
    assert out == tmp_path / "curve.png" and _png_size(out)[0] > 600
    # Nothing trained yet: no picture rather than an empty one.
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"kind": "start", "step": 0}) + "\n")
    assert plot_learning_curve(empty, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_world_to_pixel_follows_the_top_down_camera() -> None:
    centre = world_to_pixel(np.array([0.0, 0.0]), 64)
    assert np.allclose(centre, [32, 32])
    right_up = world_to_pixel(np.array([0.1, 0.1]), 64)
    assert right_up[0] > 32 and right_up[1] < 32  # image +x = world +x, image up = world +y
    assert np.allclose(world_to_pixel(np.array([0.2237, -0.2237]), 64), [64, 64], atol=0.05)


def test_world_to_pixel_finds_the_rendered_target() -> None:
    from rvperceiver.sim.reacher import make_reacher, render_frame, target_position

    env = make_reacher(image_size=64, seed=3, target_render_scale=2.0)
    try:
        frame = render_frame(env).astype(int)
        column, row = world_to_pixel(target_position(env)[:2], 64)
    finally:
        env.close()
    redness = frame[..., 0] - frame[..., 1:].mean(axis=-1)
    rows, columns = np.nonzero(redness > 0.6 * redness.max())
    # The target sphere is the reddest blob; its centre is where the projection says (within a pixel).
    assert abs(columns.mean() + 0.5 - column) < 1.5 and abs(rows.mean() + 0.5 - row) < 1.5


def test_rollout_strip_and_demo_table_are_written(tmp_path: Path) -> None:
    rollouts = [
        {"seed": 100000 + i, "success": i == 0, "final_distance": 0.004 + 0.02 * i,
         "frames": list(np.full((6, 64, 64, 3), 40 * i, dtype=np.uint8)), "steps": [0, 10, 20, 30, 40, 50],
         "target": np.array([0.05, -0.1, 0.01]), "goals": np.zeros((6, 2))}
        for i in range(3)
    ]
    strip = plot_rollout_strip(rollouts, tmp_path / "strip.png")
    width, height = _png_size(strip)
    assert width > height > 0
    records = [
        {"view": "raw+fourier-pos", "beta1": 0.9, "test_nmse": 1.04, "verdict": "collapsed", "steps_to_nmse_0.1": None},
        {"view": "fft", "beta1": 0.9, "test_nmse": 0.006, "verdict": "learning", "steps_to_nmse_0.1": 250},
    ]
    table = plot_demo_table(records, "demo", tmp_path / "demo.png")
    assert _png_size(table)[0] > 300
