from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from rvperceiver.data import robomimic
from rvperceiver.data.episodes import Episode
from rvperceiver.data.robomimic import read_robomimic, write_robomimic
from rvperceiver.errors import DataError


def smooth_episode(rng: np.random.Generator, name: str, length: int = 12, size: int = 16) -> Episode:
    t = np.arange(length)[:, None, None]
    y = np.arange(size)[None, :, None]
    x = np.arange(size)[None, None, :]
    base = 128 + 70 * np.sin(rng.uniform(0.1, 0.25) * x + rng.uniform(0.1, 0.25) * y + 0.3 * t + rng.uniform(0, 6))
    frames = np.stack([base + offset for offset in rng.uniform(-30, 30, 3)], axis=-1)
    ee = (rng.normal(size=(length, 3)).cumsum(axis=0) * 0.01).astype(np.float32)
    extras = {
        "actions": rng.uniform(-1, 1, size=(length, 2)),
        "rewards": rng.normal(size=length),
        "robot0_joint_pos": rng.normal(size=(length, 2)).astype(np.float32),
    }
    return Episode(name, np.clip(frames, 0, 255).astype(np.uint8), ee, extras)


@pytest.fixture()
def episodes() -> list[Episode]:
    rng = np.random.default_rng(7)
    return [smooth_episode(rng, f"demo_{i}") for i in range(3)]


def test_round_trip_is_exact(tmp_path: Path, episodes: list[Episode]) -> None:
    path = tmp_path / "demos.hdf5"
    splits = {"train": ["demo_0", "demo_2"], "valid": ["demo_1"]}
    write_robomimic(path, episodes, splits=splits, env_args={"env_name": "Reacher-v5", "env_type": 2})
    dataset = read_robomimic(path)
    assert dataset.names == ["demo_0", "demo_1", "demo_2"]
    assert dataset.splits == splits
    # The writer completes robomimic's three env_args keys, reading the older "env_type" spelling.
    assert dataset.meta["env_args"] == {"env_name": "Reacher-v5", "env_type": 2, "type": 2, "env_kwargs": {}}
    assert dataset.meta["total"] == 36
    assert dataset.image_key == "agentview_image" and dataset.ee_key == "robot0_eef_pos"
    for original, loaded in zip(episodes, dataset):
        assert loaded.frames.dtype == np.uint8
        np.testing.assert_array_equal(loaded.frames, original.frames)
        assert loaded.ee.dtype == np.float32
        np.testing.assert_array_equal(loaded.ee, original.ee)
        assert set(loaded.extras) == set(original.extras) | {"dones"}  # dones derived: 1 at the last step
        for key, value in original.extras.items():
            np.testing.assert_array_equal(loaded.extras[key], value)
        np.testing.assert_array_equal(loaded.extras["dones"], np.eye(1, loaded.length, loaded.length - 1)[0])


def test_file_layout_matches_robomimic(tmp_path: Path, episodes: list[Episode]) -> None:
    path = tmp_path / "demos.hdf5"
    write_robomimic(path, episodes, splits={"train": ["demo_0", "demo_1"], "valid": ["demo_2"]})
    with h5py.File(path, "r") as handle:
        assert int(handle["data"].attrs["total"]) == 36
        assert json.loads(handle["data"].attrs["env_args"]) == {"env_name": "", "type": 2, "env_kwargs": {}}
        demo = handle["data/demo_1"]
        assert int(demo.attrs["num_samples"]) == 12
        assert demo["obs/agentview_image"].compression == "gzip"
        assert demo["obs/agentview_image"].shape == (12, 16, 16, 3)
        assert demo["actions"].shape == (12, 2) and demo["rewards"].shape == (12,)
        assert demo["obs/robot0_joint_pos"].shape == (12, 2)
        assert handle["mask/train"].dtype.kind == "S"
        assert [e.decode("utf-8") for e in np.array(handle["mask/valid"][:])] == ["demo_2"]


def test_demos_are_sorted_by_integer_suffix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = [smooth_episode(rng, name, length=6, size=4) for name in ("demo_10", "demo_2", "demo_1")]
    path = tmp_path / "d.hdf5"
    write_robomimic(path, episodes)
    dataset = read_robomimic(path)
    assert dataset.names == ["demo_1", "demo_2", "demo_10"]
    np.testing.assert_array_equal(dataset[2].ee, episodes[0].ee)


def test_other_names_are_renamed_by_position_with_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    episodes = [smooth_episode(rng, name, length=6, size=4) for name in ("episode_000000", "episode_000001")]
    path = tmp_path / "d.h5"
    write_robomimic(path, episodes, splits={"train": ["episode_000001"], "valid": ["episode_000000"]})
    dataset = read_robomimic(path)
    assert dataset.names == ["demo_0", "demo_1"]
    assert dataset.splits == {"train": ["demo_1"], "valid": ["demo_0"]}
    with pytest.raises(DataError, match="nope"):
        write_robomimic(tmp_path / "e.h5", episodes, splits={"train": ["nope"]})


def test_refuses_to_overwrite_unless_asked(tmp_path: Path, episodes: list[Episode]) -> None:
    path = tmp_path / "demos.hdf5"
    write_robomimic(path, episodes)
    with pytest.raises(DataError, match="already exists") as info:
        write_robomimic(path, episodes[:1])
    assert str(path) in str(info.value)
    assert len(read_robomimic(path)) == 3
    write_robomimic(path, episodes[:1], overwrite=True)
    assert len(read_robomimic(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.hdf5"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, episodes: list[Episode], monkeypatch) -> None:
    path = tmp_path / "demos.hdf5"
    write_robomimic(path, episodes)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(robomimic, "_write_demo", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        write_robomimic(path, episodes, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.hdf5"]


def test_missing_key_lists_obs_keys(tmp_path: Path, episodes: list[Episode]) -> None:
    path = tmp_path / "demos.hdf5"
    write_robomimic(path, episodes)
    with pytest.raises(DataError, match="'robot0_eye_in_hand_image' not found") as info:
        read_robomimic(path, image_key="robot0_eye_in_hand_image")
    message = str(info.value)
    assert "data/demo_0/obs" in message and "agentview_image" in message and "robot0_joint_pos" in message
    with pytest.raises(DataError, match="target key 'eef' not found"):
        read_robomimic(path, ee_key="eef")


def test_missing_truncated_and_foreign_files(tmp_path: Path, episodes: list[Episode]) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_robomimic(tmp_path / "nothing.hdf5")
    path = tmp_path / "demos.hdf5"
    write_robomimic(path, episodes)
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(DataError, match="truncated.hdf5"):
        read_robomimic(truncated)
    text = tmp_path / "text.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match="text.hdf5"):
        read_robomimic(text)
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as handle:
        handle.create_group("other")
    with pytest.raises(DataError, match="no 'data' group.*other"):
        read_robomimic(empty)


def write_raw(path: Path, demos: dict[str, dict[str, np.ndarray]], num_samples: int | None = None) -> None:
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        for name, obs in demos.items():
            group = data.create_group(name)
            if num_samples is not None:
                group.attrs["num_samples"] = num_samples
            for key, value in obs.items():
                group[f"obs/{key}"] = value


def test_wrong_image_rank_or_dtype_names_file_key_and_shape(tmp_path: Path) -> None:
    path = tmp_path / "bad.hdf5"
    ee = np.zeros((4, 3))
    write_raw(path, {"demo_0": {"agentview_image": np.zeros((4, 3, 8, 8), np.uint8), "robot0_eef_pos": ee}})
    with pytest.raises(DataError, match=r"bad\.hdf5.*agentview_image.*\(4, 3, 8, 8\)"):
        read_robomimic(path)
    write_raw(path, {"demo_0": {"agentview_image": np.zeros((4, 8, 8, 3), np.float32), "robot0_eef_pos": ee}})
    with pytest.raises(DataError, match=r"bad\.hdf5.*agentview_image.*float32"):
        read_robomimic(path)


def test_non_finite_ee_and_width_mismatch(tmp_path: Path) -> None:
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    ee = np.zeros((4, 3))
    ee[1, 0] = np.nan
    path = tmp_path / "nan.hdf5"
    write_raw(path, {"demo_0": {"agentview_image": frames, "robot0_eef_pos": ee}})
    with pytest.raises(DataError, match=r"demo_0.*robot0_eef_pos.*NaN"):
        read_robomimic(path)
    path = tmp_path / "width.hdf5"
    write_raw(
        path,
        {
            "demo_0": {"agentview_image": frames, "robot0_eef_pos": np.zeros((4, 3))},
            "demo_1": {"agentview_image": frames, "robot0_eef_pos": np.zeros((4, 2))},
        },
    )
    with pytest.raises(DataError, match=r"demo_1.*width 2"):
        read_robomimic(path)
    path = tmp_path / "flat.hdf5"
    write_raw(path, {"demo_0": {"agentview_image": frames, "robot0_eef_pos": np.zeros((4, 3, 2))}})
    with pytest.raises(DataError, match=r"robot0_eef_pos.*\(4, 3, 2\)"):
        read_robomimic(path)


def test_num_samples_must_match(tmp_path: Path) -> None:
    path = tmp_path / "n.hdf5"
    write_raw(
        path,
        {"demo_0": {"agentview_image": np.zeros((4, 8, 8, 3), np.uint8), "robot0_eef_pos": np.zeros((4, 3))}},
        num_samples=5,
    )
    with pytest.raises(DataError, match="num_samples is 5"):
        read_robomimic(path)


def test_other_cameras_are_not_loaded_as_extras(tmp_path: Path) -> None:
    path = tmp_path / "cams.hdf5"
    obs = {
        "agentview_image": np.zeros((4, 8, 8, 3), np.uint8),
        "robot0_eye_in_hand_image": np.zeros((4, 8, 8, 3), np.uint8),
        "robot0_eef_pos": np.zeros((4, 3)),
        "robot0_gripper_qpos": np.ones((4, 2)),
    }
    write_raw(path, {"demo_0": obs})
    dataset = read_robomimic(path)
    assert set(dataset[0].extras) == {"robot0_gripper_qpos"}
    eye = read_robomimic(path, image_key="robot0_eye_in_hand_image")
    assert "agentview_image" not in eye[0].extras
