"""Demo generation: shapes, seeding (episode i uses seed + i), expert success, robomimic round trip."""

from __future__ import annotations

import numpy as np
import pytest

from rvperceiver.data.robomimic import read_robomimic
from rvperceiver.errors import DataError, InputError
from rvperceiver.sim.generate import (
    DEMO_FPS,
    EE_KEY,
    IMAGE_KEY,
    generate_demos,
    generate_to_file,
    recorded_tier,
    split_by_position,
    training_seed_range,
)
from rvperceiver.sim.tiers import get_tier


@pytest.fixture(scope="module")
def demos():
    return generate_demos(2, seed=5, image_size=32)


def test_episode_arrays(demos):
    assert [episode.name for episode in demos] == ["demo_0", "demo_1"]
    for episode in demos:
        assert episode.frames.shape == (50, 32, 32, 3) and episode.frames.dtype == np.uint8
        assert episode.ee.shape == (50, 3) and episode.ee.dtype == np.float32
        assert episode.extras["actions"].shape == (50, 2)
        assert episode.extras["target_pos"].shape == (50, 3)
        assert episode.extras["robot0_joint_pos"].shape == (50, 2)
        assert episode.extras["robot0_joint_vel"].shape == (50, 2)
        assert np.all(np.abs(episode.extras["actions"]) <= 1.0)
        assert episode.extras["rewards"].shape == (50,) and np.all(episode.extras["rewards"] <= 0.0)
        # The expert has arrived well before the last recorded step.
        final_gap = np.linalg.norm(episode.ee[-1, :2] - episode.extras["target_pos"][-1, :2])
        assert final_gap < 0.01
        assert np.linalg.norm(episode.ee[0, :2] - episode.ee[-1, :2]) > 0.01  # the arm moved


def test_episode_i_uses_seed_plus_i(demos):
    again = generate_demos(1, seed=6, image_size=32)[0]
    assert np.array_equal(again.frames, demos[1].frames)
    assert np.array_equal(again.ee, demos[1].ee)
    assert not np.array_equal(demos[0].extras["target_pos"][0], demos[1].extras["target_pos"][0])


def test_generate_to_file_round_trip(tmp_path):
    path = tmp_path / "reacher.hdf5"
    stats = generate_to_file(path, n_episodes=2, seed=3, image_size=32, valid_fraction=0.5, progress=False)
    assert stats["frames"] == 100 and stats["episodes"] == 2
    assert stats["frames_per_second"] > 0 and stats["expert_success_rate"] == 1.0
    assert (stats["train_episodes"], stats["valid_episodes"]) == (1, 1)

    loaded = read_robomimic(path, image_key=IMAGE_KEY, ee_key=EE_KEY)
    assert loaded.names == ["demo_0", "demo_1"]
    assert loaded.splits == {"train": ["demo_0"], "valid": ["demo_1"]}
    assert training_seed_range(loaded.meta["env_args"]) == range(3, 5)
    assert recorded_tier(loaded.meta["env_args"]) == get_tier("stock") and recorded_tier({}) is None
    reference = generate_demos(1, seed=3, image_size=32)[0]
    assert np.array_equal(loaded[0].frames, reference.frames)
    assert np.allclose(loaded[0].ee, reference.ee)
    assert "actions" in loaded[0].extras
    np.testing.assert_array_equal(loaded[0].extras["rewards"], reference.extras["rewards"])
    env_args = loaded.meta["env_args"]
    assert env_args["env_name"] == "Reacher-v5" and env_args["type"] == 2  # robomimic's EnvType.GYM_TYPE
    assert env_args["env_kwargs"]["width"] == 32 and env_args["rvperceiver"]["fps"] == DEMO_FPS

    with pytest.raises(DataError):
        generate_to_file(path, n_episodes=1, seed=0, image_size=32, progress=False)


def test_split_by_position():
    names = [f"demo_{i}" for i in range(10)]
    assert split_by_position(names, 0.1) == (names[:9], names[9:])
    assert split_by_position(names, 0.0) == (names, [])
    assert split_by_position(names[:1], 0.5) == (names[:1], [])  # never all episodes in validation
    with pytest.raises(InputError):
        split_by_position(names, 1.0)


@pytest.mark.parametrize("kwargs", [dict(n_episodes=0, seed=0), dict(n_episodes=1, seed=-1), dict(n_episodes=1.5, seed=0)])
def test_bad_counts_raise(kwargs):
    with pytest.raises(InputError):
        generate_demos(**kwargs)


def test_training_seed_range_needs_generator_metadata():
    with pytest.raises(DataError):
        training_seed_range({"env_name": "Reacher-v5"})


def test_demo_fps_is_the_environments_frame_rate():
    from rvperceiver.sim.reacher import make_reacher

    env = make_reacher(image_size=32)
    try:
        assert env.metadata["render_fps"] == DEMO_FPS
    finally:
        env.close()
