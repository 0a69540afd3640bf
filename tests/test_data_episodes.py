from __future__ import annotations

import numpy as np
import pytest

from rvperceiver.data.episodes import Episode, EpisodeSet, check_consistent, validate_episode
from rvperceiver.errors import DataError


def make_episode(name: str = "demo_0", length: int = 5, size: int = 4, channels: int = 3, ee_dim: int = 3) -> Episode:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(length, size, size, channels), dtype=np.uint8)
    ee = rng.normal(size=(length, ee_dim)).astype(np.float32)
    return Episode(name=name, frames=frames, ee=ee, extras={"actions": np.zeros((length, 2))})


def test_episode_properties() -> None:
    episode = make_episode(length=7, size=5, channels=1, ee_dim=2)
    assert episode.length == 7
    assert episode.frame_shape == (5, 5, 1)
    assert episode.ee_dim == 2


def test_episode_set_names_lengths_and_select() -> None:
    episodes = [make_episode("demo_0", 5), make_episode("demo_1", 6)]
    dataset = EpisodeSet(episodes, source="file.hdf5", image_key="img", ee_key="pos")
    assert len(dataset) == 2
    assert dataset.names == ["demo_0", "demo_1"]
    assert dataset.lengths == [5, 6]
    assert [e.name for e in dataset.select(["demo_1", "demo_0"])] == ["demo_1", "demo_0"]
    assert dataset[1] is episodes[1]
    with pytest.raises(DataError, match=r"demo_9.*file\.hdf5|file\.hdf5.*demo_9"):
        dataset.select(["demo_9"])


def test_valid_episode_passes() -> None:
    validate_episode(make_episode(channels=4))
    validate_episode(make_episode(channels=1))


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (np.zeros((5, 4, 4, 3), dtype=np.float32), "float32"),
        (np.zeros((5, 4, 4), dtype=np.uint8), r"\(5, 4, 4\)"),
        (np.zeros((5, 3, 8, 8), dtype=np.uint8), r"\(5, 3, 8, 8\)"),
    ],
)
def test_bad_frames_name_file_key_and_shape(frames: np.ndarray, expected: str) -> None:
    episode = make_episode()
    episode.frames = frames
    with pytest.raises(DataError, match=expected) as info:
        validate_episode(episode, source="some/file.hdf5", image_key="agentview_image")
    message = str(info.value)
    assert "some/file.hdf5" in message and "agentview_image" in message and "demo_0" in message


def test_ee_must_be_two_dimensional() -> None:
    episode = make_episode()
    episode.ee = np.zeros(5, dtype=np.float32)
    with pytest.raises(DataError, match=r"robot0_eef_pos.*\[L, D\]"):
        validate_episode(episode, ee_key="robot0_eef_pos")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_ee_names_episode_key_and_step(bad: float) -> None:
    episode = make_episode("demo_3")
    episode.ee[2, 1] = bad
    with pytest.raises(DataError, match="NaN/Inf") as info:
        validate_episode(episode, source="f.hdf5", ee_key="robot0_eef_pos")
    message = str(info.value)
    assert "demo_3" in message and "robot0_eef_pos" in message and "step 2" in message


def test_frame_and_ee_lengths_must_agree() -> None:
    episode = make_episode(length=5)
    episode.ee = episode.ee[:4]
    with pytest.raises(DataError, match="5 frames.*4 rows"):
        validate_episode(episode)


def test_extras_need_one_row_per_step() -> None:
    episode = make_episode(length=5)
    episode.extras["joint"] = np.zeros((3, 2))
    with pytest.raises(DataError, match="joint"):
        validate_episode(episode)


def test_check_consistent_rejects_width_mismatch_duplicates_and_empty() -> None:
    with pytest.raises(DataError, match=r"demo_1.*width 2.*demo_0.*width 3"):
        check_consistent([make_episode("demo_0", ee_dim=3), make_episode("demo_1", ee_dim=2)], "x.h5", "pos")
    with pytest.raises(DataError, match="duplicate"):
        check_consistent([make_episode("demo_0"), make_episode("demo_0")])
    with pytest.raises(DataError, match="no episodes"):
        check_consistent([])
