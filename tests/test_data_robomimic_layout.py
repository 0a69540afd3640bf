"""The HDF5 the project writes has robomimic's documented layout, read the way robomimic's own code reads it.

robomimic 0.3 (``robomimic/utils/dataset.py``, ``scripts/get_dataset_info.py``, ``utils/env_utils.py``):
``data`` attrs ``total`` and ``env_args`` (JSON: ``env_name``, ``type`` = ``EnvType``, ``env_kwargs``); per demo
attr ``num_samples`` and ``actions``, ``rewards``, ``dones``, ``obs/<key>``, ``next_obs/<key>`` (loaded by default,
``load_next_obs=True``); ``mask/<filter>`` as byte strings; demo names ``demo_<int>`` (it sorts by ``int(name[5:])``).
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

from rvperceiver.data.episodes import Episode
from rvperceiver.data.robomimic import read_robomimic, robomimic_env_args, write_robomimic
from rvperceiver.errors import DataError
from rvperceiver.sim.generate import EE_KEY, IMAGE_KEY, generate_to_file

GYM_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE


@pytest.fixture(scope="module")
def reacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout") / "reacher.hdf5"
    generate_to_file(path, n_episodes=3, seed=11, image_size=32, valid_fraction=0.3, progress=False)
    return path


def assert_robomimic_layout(path: Path, obs_keys: list[str]) -> None:
    """The documented layout, checked with the expressions robomimic's loaders use."""
    with h5py.File(path, "r") as handle:
        data = handle["data"]
        env_meta = json.loads(data.attrs["env_args"])
        assert {"env_name", "type", "env_kwargs"} <= set(env_meta)
        assert isinstance(env_meta["env_name"], str) and isinstance(env_meta["env_kwargs"], dict)
        assert env_meta["type"] in (1, 2, 3)
        demos = list(data.keys())
        demos = [demos[i] for i in np.argsort([int(name[5:]) for name in demos])]  # get_dataset_info's order
        assert int(data.attrs["total"]) == sum(int(data[demo].attrs["num_samples"]) for demo in demos)
        for demo in demos:
            group = data[demo]
            length = int(group.attrs["num_samples"])
            for key in ("actions", "rewards", "dones"):
                assert isinstance(group[key], h5py.Dataset) and group[key].shape[0] == length, (demo, key)
                group[key][()].astype("float32")  # SequenceDataset casts every dataset key to float32
            assert group["dones"][-1] == 1
            for key in obs_keys:  # SequenceDataset.load_dataset_in_memory with load_next_obs=True
                current = group[f"obs/{key}"][()]
                following = group[f"next_obs/{key}"][()]
                assert current.shape[0] == length and following.shape == current.shape
                np.testing.assert_array_equal(following[:-1], current[1:])
                np.testing.assert_array_equal(following[-1], current[-1])
            assert sorted(group["obs"].keys()) == sorted(group["next_obs"].keys())
        if "mask" in handle:
            for name in handle["mask"]:
                masked = np.array(handle[f"mask/{name}"][:])
                assert masked.dtype.kind == "S"
                assert set(item.decode("utf-8") for item in masked) <= set(demos)


def test_generated_reacher_file_has_robomimic_layout(reacher_file: Path) -> None:
    assert_robomimic_layout(reacher_file, [IMAGE_KEY, EE_KEY, "target_pos", "robot0_joint_pos", "robot0_joint_vel"])
    with h5py.File(reacher_file, "r") as handle:
        assert handle["data/demo_0/next_obs"][IMAGE_KEY].is_virtual  # a view of obs: no second copy of frames
        masks = {name: [n.decode() for n in handle[f"mask/{name}"][:]] for name in handle["mask"]}
    assert masks == {"train": ["demo_0", "demo_1"], "valid": ["demo_2"]}


def test_generated_env_args_build_the_environment(reacher_file: Path) -> None:
    """robomimic's gym wrapper builds the env as ``gym.make(env_name, **env_kwargs)`` when ``type`` is 2."""
    with h5py.File(reacher_file, "r") as handle:
        env_meta = json.loads(handle["data"].attrs["env_args"])
    assert env_meta["type"] == GYM_TYPE and env_meta["env_name"] == "Reacher-v5"
    env = gym.make(env_meta["env_name"], **env_meta["env_kwargs"])
    try:
        env.reset(seed=0)
        assert env.render().shape == (32, 32, 3)
    finally:
        env.close()


def test_next_obs_survives_moving_the_file(reacher_file: Path, tmp_path: Path) -> None:
    """The virtual next_obs point at "." (the same file), so a renamed or copied file still reads them."""
    moved = tmp_path / "elsewhere" / "renamed.hdf5"
    moved.parent.mkdir()
    moved.write_bytes(reacher_file.read_bytes())
    with h5py.File(moved, "r") as handle:
        frames = handle[f"data/demo_1/obs/{IMAGE_KEY}"][()]
        np.testing.assert_array_equal(handle[f"data/demo_1/next_obs/{IMAGE_KEY}"][()][:-1], frames[1:])


def test_project_reader_still_reads_the_new_layout_and_older_files(reacher_file: Path, tmp_path: Path) -> None:
    dataset = read_robomimic(reacher_file, image_key=IMAGE_KEY, ee_key=EE_KEY)
    assert dataset.names == ["demo_0", "demo_1", "demo_2"]
    assert dataset.meta["env_args"]["type"] == GYM_TYPE
    # A file as the project wrote it before: no next_obs, env_type as a string, no dones/rewards.
    old = tmp_path / "old.hdf5"
    with h5py.File(old, "w") as handle:
        data = handle.create_group("data")
        data.attrs["total"] = 6
        data.attrs["env_args"] = json.dumps({"env_name": "Reacher-v5", "env_type": "gymnasium", "env_kwargs": {}})
        demo = data.create_group("demo_0")
        demo.attrs["num_samples"] = 6
        demo["obs/agentview_image"] = np.zeros((6, 4, 4, 3), np.uint8)
        demo["obs/robot0_eef_pos"] = np.zeros((6, 3), np.float32)
        demo["actions"] = np.zeros((6, 2), np.float32)
    loaded = read_robomimic(old)
    assert loaded.meta["env_args"]["env_type"] == "gymnasium" and loaded.lengths == [6]
    # Rewritten, it gains the documented layout; the older env_type spelling gives the integer type.
    rewritten = write_robomimic(tmp_path / "rewritten.hdf5", loaded)
    assert_robomimic_layout(rewritten, ["agentview_image", "robot0_eef_pos"])
    assert read_robomimic(rewritten).meta["env_args"]["type"] == GYM_TYPE


def test_written_layout_for_arbitrary_episodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = [
        Episode(
            f"run{i}",
            rng.integers(0, 255, size=(n, 6, 6, 3), dtype=np.uint8),
            rng.normal(size=(n, 3)).astype(np.float32),
            {"actions": rng.uniform(-1, 1, size=(n, 2)), "gripper": rng.normal(size=(n, 1))},
        )
        for i, n in enumerate((1, 4))  # a one-step demo too: its next_obs is itself
    ]
    path = write_robomimic(tmp_path / "any.hdf5", episodes, splits={"valid": ["run1"]})
    assert_robomimic_layout(path, ["agentview_image", "robot0_eef_pos", "gripper"])
    with h5py.File(path, "r") as handle:
        np.testing.assert_array_equal(handle["data/demo_0/rewards"][()], np.zeros(1))
        assert [n.decode() for n in handle["mask/valid"][:]] == ["demo_1"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {"env_name": "", "type": 2, "env_kwargs": {}}),
        ({"env_name": "Lift", "type": 1, "env_kwargs": {"robots": ["Panda"]}}, None),
        ({"env_name": "Reacher-v5", "env_type": "gymnasium"}, {"env_name": "Reacher-v5", "env_type": "gymnasium", "type": 2, "env_kwargs": {}}),
    ],
)
def test_env_args_completion(given, expected) -> None:
    assert robomimic_env_args(given) == (expected if expected is not None else given)


def test_env_args_of_an_unknown_type_are_refused() -> None:
    with pytest.raises(DataError, match="not one of robomimic's env types"):
        robomimic_env_args({"env_type": "pybullet"}, "x.hdf5")
    with pytest.raises(DataError, match="EnvType values 1, 2, 3"):
        robomimic_env_args({"type": 7}, "x.hdf5")
