from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from rvperceiver.data.episodes import Episode
from rvperceiver.data.formats import DEFAULT_KEYS, detect_format, open_episodes
from rvperceiver.data.lerobot import write_lerobot
from rvperceiver.data.robomimic import write_robomimic
from rvperceiver.errors import DataError


def tiny_episodes(count: int = 2, length: int = 6) -> list[Episode]:
    rng = np.random.default_rng(11)
    return [
        Episode(
            f"demo_{i}",
            np.full((length, 8, 8, 3), 40 * (i + 1), dtype=np.uint8),
            rng.normal(size=(length, 2)).astype(np.float32),
        )
        for i in range(count)
    ]


def test_detects_formats_and_uses_default_keys(tmp_path: Path) -> None:
    episodes = tiny_episodes()
    for name in ("a.hdf5", "b.h5"):
        write_robomimic(tmp_path / name, episodes)
        assert detect_format(tmp_path / name) == "robomimic"
        dataset = open_episodes(tmp_path / name)
        assert (dataset.image_key, dataset.ee_key) == DEFAULT_KEYS["robomimic"]
        np.testing.assert_array_equal(dataset[1].frames, episodes[1].frames)
    write_lerobot(tmp_path / "lr", episodes)
    assert detect_format(tmp_path / "lr") == "lerobot"
    dataset = open_episodes(tmp_path / "lr")
    assert (dataset.image_key, dataset.ee_key) == DEFAULT_KEYS["lerobot"]
    assert dataset.meta["format"] == "lerobot"
    np.testing.assert_array_equal(dataset[0].ee, episodes[0].ee)


def test_custom_keys_are_passed_through(tmp_path: Path) -> None:
    episodes = tiny_episodes()
    write_robomimic(tmp_path / "a.hdf5", episodes, image_key="cam", ee_key="tip")
    dataset = open_episodes(tmp_path / "a.hdf5", image_key="cam", ee_key="tip")
    assert dataset.image_key == "cam" and len(dataset) == 2
    write_lerobot(tmp_path / "lr", episodes, image_key="observation.images.side", ee_key="observation.tip")
    dataset = open_episodes(tmp_path / "lr", image_key="observation.images.side", ee_key="observation.tip")
    assert dataset.ee_key == "observation.tip" and len(dataset) == 2


def test_missing_key_lists_keys_present(tmp_path: Path) -> None:
    write_robomimic(tmp_path / "a.hdf5", tiny_episodes(), image_key="cam", ee_key="tip")
    with pytest.raises(DataError, match="'agentview_image' not found") as info:
        open_episodes(tmp_path / "a.hdf5")
    assert "'cam'" in str(info.value) and "'tip'" in str(info.value)
    write_lerobot(tmp_path / "lr", tiny_episodes(), ee_key="observation.tip")
    with pytest.raises(DataError, match="'observation.state' not found") as info:
        open_episodes(tmp_path / "lr")
    assert "observation.tip" in str(info.value) and "observation.images.top" in str(info.value)


def test_paths_that_are_not_datasets(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        open_episodes(tmp_path / "missing.hdf5")
    assert "missing.hdf5" in str(info.value)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt.*\.hdf5/\.h5"):
        open_episodes(tmp_path / "notes.txt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match=r"empty_dir.*meta/info\.json"):
        open_episodes(tmp_path / "empty_dir")
    write_lerobot(tmp_path / "lr", tiny_episodes())
    with pytest.raises(DataError, match="root directory"):
        open_episodes(tmp_path / "lr/data/chunk-000/file-000.parquet")


def test_truncated_hdf5_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "a.hdf5"
    write_robomimic(path, tiny_episodes())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"a\.hdf5"):
        open_episodes(path)


def test_bad_content_through_open_episodes(tmp_path: Path) -> None:
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as handle:
        handle["data/demo_0/obs/agentview_image"] = np.zeros((4, 8, 8), np.uint8)
        handle["data/demo_0/obs/robot0_eef_pos"] = np.zeros((4, 3))
    with pytest.raises(DataError, match=r"bad\.hdf5.*agentview_image.*\(4, 8, 8\)"):
        open_episodes(path)
    lerobot_root = tmp_path / "lr"
    write_lerobot(lerobot_root, tiny_episodes())
    video = lerobot_root / "videos/observation.images.top/chunk-000/file-000.mp4"
    video.write_bytes(b"junk" * 64)
    with pytest.raises(DataError, match="file-000.mp4"):
        open_episodes(lerobot_root)
