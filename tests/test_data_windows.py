from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rvperceiver.data.episodes import Episode, EpisodeSet
from rvperceiver.data.windows import WindowDataset
from rvperceiver.errors import DataError


def labelled_episode(episode_id: int, length: int, size: int = 4, ee_dim: int = 3) -> Episode:
    """Frame t is filled with t; ee[t, d] = 100 * episode + t + d / 10, so any misalignment shows."""
    steps = np.arange(length)
    frames = np.broadcast_to(steps[:, None, None, None], (length, size, size, 3)).astype(np.uint8)
    ee = (100 * episode_id + steps[:, None] + np.arange(ee_dim)[None, :] / 10).astype(np.float32)
    return Episode(f"demo_{episode_id}", frames, ee)


@pytest.fixture()
def episodes() -> list[Episode]:
    return [labelled_episode(0, 10), labelled_episode(1, 7), labelled_episode(2, 12)]


def test_frames_and_targets_are_aligned(episodes: list[Episode]) -> None:
    t_obs, t_pred = 2, 3
    dataset = WindowDataset(episodes, t_obs, t_pred)
    assert len(dataset) == (10 - 4) + (7 - 4) + (12 - 4)
    assert dataset.frame_shape == (2, 4, 4, 3) and dataset.target_shape == (3, 3)
    for i in range(len(dataset)):
        episode_id, start = dataset.index[i]
        frames, target = dataset[i]
        assert frames.dtype == torch.uint8 and frames.shape == (t_obs, 4, 4, 3)
        assert target.dtype == torch.float32 and target.shape == (t_pred, 3)
        assert frames[:, 0, 0, 0].tolist() == [start, start + 1]
        expected_steps = np.arange(start + t_obs, start + t_obs + t_pred)
        expected = 100 * episode_id + expected_steps[:, None] + np.arange(3)[None, :] / 10
        np.testing.assert_allclose(target.numpy(), expected, rtol=0, atol=1e-5)


def test_targets_array_matches_items_without_touching_frames(episodes: list[Episode]) -> None:
    dataset = WindowDataset(episodes, 3, 2)
    stacked = np.stack([dataset[i][1].numpy() for i in range(len(dataset))])

    class Untouchable:
        def __getitem__(self, item):
            raise AssertionError("targets_array read a frame")

    for episode in dataset.episodes:
        episode.frames = Untouchable()  # type: ignore[assignment]
    targets = dataset.targets_array()
    assert targets.dtype == np.float32 and targets.shape == (len(dataset), 2, 3)
    np.testing.assert_array_equal(targets, stacked)


def test_states_array_matches_items_without_touching_frames(episodes: list[Episode]) -> None:
    for i, episode in enumerate(episodes):
        episode.extras["pos"] = np.arange(episode.length * 2, dtype=np.float64).reshape(-1, 2) + 100 * i
    assert WindowDataset(episodes, 3, 2).states_array() is None
    dataset = WindowDataset(episodes, 3, 2, state_keys=("pos",))
    stacked = np.stack([dataset[i][0]["observation.state"].numpy() for i in range(len(dataset))])

    class Untouchable:
        def __getitem__(self, item):
            raise AssertionError("states_array read a frame")

    for episode in dataset.episodes:
        episode.frames = Untouchable()  # type: ignore[assignment]
    states = dataset.states_array()
    assert states.dtype == np.float32 and states.shape == (len(dataset), 3, 2)
    np.testing.assert_array_equal(states, stacked)


def test_items_are_copies(episodes: list[Episode]) -> None:
    dataset = WindowDataset(episodes, 2, 2)
    frames, target = dataset[0]
    frames.fill_(255)
    target.fill_(-1.0)
    assert episodes[0].frames[0, 0, 0, 0] == 0 and episodes[0].ee[2, 0] == 2.0


def test_indexing_rules(episodes: list[Episode]) -> None:
    dataset = WindowDataset(episodes, 2, 2)
    last_frames, _ = dataset[len(dataset) - 1]
    negative_frames, _ = dataset[-1]
    assert torch.equal(last_frames, negative_frames)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_batches_through_a_dataloader(episodes: list[Episode]) -> None:
    dataset = WindowDataset(EpisodeSet(episodes, "mem", "img", "ee"), 2, 4)
    frames, targets = next(iter(DataLoader(dataset, batch_size=5, shuffle=False)))
    assert frames.shape == (5, 2, 4, 4, 3) and frames.dtype == torch.uint8
    assert targets.shape == (5, 4, 3)


def test_inconsistent_or_short_episodes(episodes: list[Episode]) -> None:
    with pytest.raises(DataError, match=r"demo_1.*\(5, 5, 3\).*demo_0.*\(4, 4, 3\)"):
        WindowDataset([labelled_episode(0, 10), labelled_episode(1, 10, size=5)], 2, 2)
    with pytest.raises(DataError, match="width"):
        WindowDataset([labelled_episode(0, 10), labelled_episode(1, 10, ee_dim=2)], 2, 2)
    with pytest.raises(DataError, match=r"'demo_1'.*7 steps"):
        WindowDataset(episodes, 4, 4)
    with pytest.warns(UserWarning, match="demo_1"):
        dataset = WindowDataset(episodes, 4, 4, skip_short=True)
    assert set(dataset.index.pairs[:, 0].tolist()) == {0, 2}


def _with_state(episode: Episode) -> Episode:
    steps = np.arange(episode.length, dtype=np.float64)
    episode.extras["joint_pos"] = np.stack([steps, -steps], axis=1)  # [L, 2]
    episode.extras["gripper"] = steps * 10  # [L]: one column
    return episode


def test_low_dim_observations_come_with_the_frames_of_the_same_steps(episodes: list[Episode]) -> None:
    dataset = WindowDataset([_with_state(e) for e in episodes], 2, 3, state_keys=("joint_pos", "gripper"))
    assert dataset.state_shape == (2, 3)
    for i in (0, 5, len(dataset) - 1):
        _, start = dataset.index[i]
        observation, target = dataset[i]
        assert set(observation) == {"observation.image", "observation.state"}
        assert observation["observation.image"][:, 0, 0, 0].tolist() == [start, start + 1]
        state = observation["observation.state"]
        assert state.dtype == torch.float32
        assert state.tolist() == [[start, -start, 10 * start], [start + 1, -start - 1, 10 * (start + 1)]]
    batch, _ = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["observation.state"].shape == (4, 2, 3) and batch["observation.image"].shape == (4, 2, 4, 4, 3)
    assert WindowDataset(episodes, 2, 3).state_shape is None


def test_a_missing_low_dim_key_lists_the_keys_present(episodes: list[Episode]) -> None:
    with pytest.raises(DataError, match=r"low-dim observation key 'joint_vel' not found .*present: \['gripper', 'joint_pos'\]"):
        WindowDataset([_with_state(e) for e in episodes], 2, 3, state_keys=("joint_vel",))
