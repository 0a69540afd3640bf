"""Reading data written by LeRobot's own code (tests/data/lerobot_v30_reacher, see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvperceiver.data.formats import open_episodes
from rvperceiver.data.lerobot import read_lerobot
from rvperceiver.data.loading import load_windows

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = DATA / "lerobot_v30_reacher"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "lerobot_v30_reacher_reference.npz", allow_pickle=False) as loaded:
        return {key: loaded[key] for key in loaded.files}


def test_frames_are_pixel_identical_to_what_lerobot_decodes(reference) -> None:
    episodes = read_lerobot(FIXTURE)
    assert episodes.names == [f"episode_{i:06d}" for i in range(4)] and episodes.lengths == [50] * 4
    frames = np.concatenate([np.asarray(e.frames) for e in episodes])  # dataset index order
    assert frames.dtype == np.uint8 and frames.shape == (200, 64, 64, 3)
    assert np.array_equal(frames, reference["lerobot_decoded_frames"])
    # ... which is what the lossy codec made of the rendered frames, not the rendered frames themselves.
    error = np.abs(frames.astype(np.int16) - reference["rendered_frames"].astype(np.int16)).mean()
    assert 0.5 < error < 3.0


def test_state_equals_what_lerobot_returns(reference) -> None:
    episodes = read_lerobot(FIXTURE, ee_key="observation.state")
    state = np.concatenate([e.ee for e in episodes])
    assert state.dtype == np.float32 and np.array_equal(state, reference["state"])
    assert set(episodes[0].extras) >= {"action"} and episodes[0].extras["action"].shape == (50, 2)


def test_splits_without_valid_fall_back_to_an_episode_split() -> None:
    episodes = open_episodes(FIXTURE)
    assert episodes.splits == {"train": episodes.names}  # info.json has "train": "0:4" and no valid split
    windows = load_windows(FIXTURE, t_obs=2, t_pred=8, valid_fraction=0.25, split_seed=0)
    assert len(windows.valid_episodes) == 1 and len(windows.train_episodes) == 3
    assert set(windows.train_episodes) | set(windows.valid_episodes) == set(episodes.names)
    assert len(windows.train) == 3 * (50 - 10 + 1) and windows.train.frame_shape == (2, 64, 64, 3)


@pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")
def test_a_lerobot_user_trains_on_action_streaming_the_video(tmp_path: Path) -> None:
    import torch

    from rvperceiver.model import Policy
    from rvperceiver.train.config import load_config
    from rvperceiver.train.run import evaluate_checkpoint, train_from_config

    config = load_config(
        Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml",
        [f"data.path={FIXTURE}", "data.target_key=action", "data.streaming=true", "data.valid_fraction=0.25",
         "data.stats_cache=false", "steps=2", "eval_every=2", "checkpoint_every=2", "policy.backbone=cnn",
         "policy.view.transform=identity", "policy.view.pre_norm=zscore", "policy.view.post_norm=none",
         f"out_dir={tmp_path / 'run'}"],
    )
    result = train_from_config(config, progress=False)
    assert result.policy.target_shape == (4, 2)  # LeRobot's 2-torque action, not the state
    metrics = evaluate_checkpoint(tmp_path / "run", FIXTURE, split="valid")
    assert metrics["samples"] == 50 - 6 + 1
    policy = Policy.from_pretrained(tmp_path / "run" / "checkpoints" / "last" / "pretrained_model")
    policy.reset()
    action = policy.select_action({"observation.image": np.zeros((64, 64, 3), np.uint8)})
    assert action.shape == (2,) and bool(torch.isfinite(action).all())
