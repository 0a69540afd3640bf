"""Streaming reads: lazy frames equal the in-memory ones, caches stay bounded, workers get their own handles,
and a video cut short is named with the episode it loses."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rvperceiver.data.episodes import Episode
from rvperceiver.data.formats import open_episodes
from rvperceiver.data.lazy import HDF5Frames, LazyFrames, SideBySide, VideoChunkCache
from rvperceiver.data.lerobot import read_lerobot
from rvperceiver.data.robomimic import read_robomimic, write_robomimic
from rvperceiver.data.windows import WindowDataset
from rvperceiver.errors import DataError

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = DATA / "lerobot_v30_reacher"
VIDEO = Path("videos/observation.images.top/chunk-000/file-000.mp4")


def _episodes(n: int = 3, length: int = 12) -> list[Episode]:
    rng = np.random.default_rng(0)
    return [
        Episode(
            f"demo_{i}",
            rng.integers(0, 256, (length, 6, 8, 3), dtype=np.uint8),
            rng.normal(size=(length, 3)).astype(np.float32),
            {
                "wrist_image": rng.integers(0, 256, (length, 6, 4, 3), dtype=np.uint8),
                "actions": rng.normal(size=(length, 2)).astype(np.float32),
                "joint_pos": rng.normal(size=(length, 2)).astype(np.float32),
            },
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def hdf5(tmp_path_factory) -> Path:
    return write_robomimic(tmp_path_factory.mktemp("lazy") / "demos.hdf5", _episodes())


def test_hdf5_frames_read_what_the_file_holds(hdf5: Path) -> None:
    eager = read_robomimic(hdf5)
    lazy = read_robomimic(hdf5, streaming=True)
    frames = lazy[1].frames
    assert isinstance(frames, HDF5Frames) and frames.shape == (12, 6, 8, 3) and frames.dtype == np.uint8
    whole = eager[1].frames
    assert np.array_equal(frames[3:7], whole[3:7]) and np.array_equal(frames[-1], whole[-1])
    assert np.array_equal(frames[[5, 2, 2, 9]], whole[[5, 2, 2, 9]])  # any order, repeats
    assert np.array_equal(np.asarray(frames), whole)
    assert np.array_equal(pickle.loads(pickle.dumps(frames))[0:2], whole[0:2])  # picklable: no open handle inside
    with pytest.raises(IndexError):
        frames[12]


def test_streaming_windows_equal_in_memory_windows_also_through_worker_processes(hdf5: Path) -> None:
    eager = WindowDataset(read_robomimic(hdf5), 2, 3, state_keys=("joint_pos",))
    lazy = WindowDataset(read_robomimic(hdf5, streaming=True), 2, 3, state_keys=("joint_pos",))
    for a, b in zip(DataLoader(eager, batch_size=5), DataLoader(lazy, batch_size=5, num_workers=2)):
        assert torch.equal(a[0]["observation.image"], b[0]["observation.image"])
        assert torch.equal(a[0]["observation.state"], b[0]["observation.state"]) and torch.equal(a[1], b[1])


def test_several_cameras_side_by_side_and_the_target_by_key(hdf5: Path) -> None:
    for streaming in (False, True):
        both = open_episodes(hdf5, image_keys=("agentview_image", "wrist_image"), target_key="action", streaming=streaming)
        episode, source = both[0], _episodes()[0]
        assert both.image_keys == ("agentview_image", "wrist_image") and episode.frames.shape == (12, 6, 12, 3)
        assert np.array_equal(np.asarray(episode.frames), np.concatenate([source.frames, source.extras["wrist_image"]], axis=2))
        assert both.target_key == "actions"  # LeRobot's name finds robomimic's demo-level actions
        assert np.array_equal(episode.ee, source.extras["actions"]) and "actions" not in episode.extras
    assert isinstance(open_episodes(hdf5, image_keys=("agentview_image", "wrist_image"), streaming=True)[0].frames, SideBySide)
    with pytest.raises(DataError, match=r"target key 'gripper' not found .*obs keys present: \[.*'joint_pos'.*demo-level keys present: \['actions'"):
        open_episodes(hdf5, target_key="gripper")


def test_lerobot_video_streams_pixel_identical_through_a_bounded_cache() -> None:
    with np.load(DATA / "lerobot_v30_reacher_reference.npz", allow_pickle=False) as loaded:
        expected = loaded["lerobot_decoded_frames"]
    lazy = read_lerobot(FIXTURE, streaming=True, video_cache_bytes=1 << 20, target_key="action")
    frames = [episode.frames for episode in lazy]
    assert all(isinstance(f, LazyFrames) for f in frames) and lazy.target_key == "action" and lazy[0].ee.shape == (50, 2)
    assert np.array_equal(frames[2][10:14], expected[110:114])  # one window: decodes one chunk, not the file
    cache: VideoChunkCache = frames[0].cache
    assert cache.decoded_chunks == 1 + 1  # plus the check of the file's last frame at open
    assert np.array_equal(np.concatenate([np.asarray(f) for f in frames]), expected)
    assert cache.bytes <= 1 << 20  # 64x64x3 chunks of 32 frames (393 KB): at most two kept


def test_a_video_cut_short_names_the_file_and_the_first_episode_it_loses(tmp_path: Path) -> None:
    root = Path(shutil.copytree(FIXTURE, tmp_path / "cut"))
    video = root / VIDEO
    video.chmod(0o644)
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.6)])  # about 112 of the 200 frames still decode
    with pytest.raises(DataError, match=r"file-000\.mp4 is truncated or damaged: episode_000002 \(and 1 later episode"):
        read_lerobot(root, streaming=True)
    with pytest.raises(DataError, match=r"file-000\.mp4 is truncated or damaged: decoding stopped after \d+ frames .* episode_000002 needs"):
        read_lerobot(root)
    assert video.stat().st_size == int(len(data) * 0.6)  # nothing on disk is touched
