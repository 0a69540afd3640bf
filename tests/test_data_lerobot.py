from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rvperceiver.data.episodes import Episode
from rvperceiver.data.lerobot import read_lerobot, write_lerobot
from rvperceiver.data.lerobot import reader as lerobot_reader
from rvperceiver.errors import DataError, InputError

IMAGE = "observation.images.top"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"


def smooth_episode(
    rng: np.random.Generator, name: str, length: int = 12, height: int = 16, width: int = 16, channels: int = 3
) -> Episode:
    """Random but smooth frames (a travelling wave, per-channel offsets) so lossy video keeps them close."""
    t = np.arange(length)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    base = 128 + 70 * np.sin(rng.uniform(0.1, 0.25) * x + rng.uniform(0.1, 0.25) * y + 0.3 * t + rng.uniform(0, 6))
    frames = np.stack([base + offset for offset in rng.uniform(-30, 30, channels)], axis=-1)
    ee = (rng.normal(size=(length, 3)).cumsum(axis=0) * 0.01).astype(np.float32)
    extras = {"action": rng.uniform(-1, 1, size=(length, 2)).astype(np.float32), "next.reward": rng.normal(size=length)}
    return Episode(name, np.clip(frames, 0, 255).astype(np.uint8), ee, extras)


@pytest.fixture()
def episodes() -> list[Episode]:
    rng = np.random.default_rng(3)
    return [smooth_episode(rng, f"demo_{i}") for i in range(3)]


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.mark.parametrize(("codec", "max_error"), [("libx264", 5.0), ("libsvtav1", 5.0), ("mpeg4", 5.0)])
def test_video_round_trip(tmp_path: Path, episodes: list[Episode], codec: str, max_error: float) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes, fps=50, codec=codec)
    dataset = read_lerobot(root)
    assert dataset.names == ["episode_000000", "episode_000001", "episode_000002"]
    assert dataset.meta["fps"] == 50 and dataset.meta["codebase_version"] == "v3.0"
    assert dataset.meta["timestamp_fallback_matches"] == 0
    assert dataset.splits == {"train": dataset.names}
    for original, loaded in zip(episodes, dataset):
        assert loaded.frames.shape == original.frames.shape and loaded.frames.dtype == np.uint8
        assert mean_abs_error(loaded.frames, original.frames) < max_error
        np.testing.assert_array_equal(loaded.ee, original.ee)
        np.testing.assert_array_equal(loaded.extras["action"], original.extras["action"])
        np.testing.assert_array_equal(loaded.extras["next.reward"], original.extras["next.reward"])


def test_layout_many_episodes_per_file(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes, fps=25)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3 and info["total_frames"] == 36 and info["fps"] == 25
    assert info["features"][IMAGE]["dtype"] == "video"
    assert info["features"][IMAGE]["shape"] == [16, 16, 3]
    assert info["features"]["observation.state"]["shape"] == [3]
    assert info["features"][IMAGE]["info"]["video.pix_fmt"] == "yuv420p"
    meta = pq.read_table(root / EPISODES_FILE).to_pydict()
    assert meta["length"] == [12, 12, 12]
    assert meta["dataset_from_index"] == [0, 12, 24] and meta["dataset_to_index"] == [12, 24, 36]
    assert meta[f"videos/{IMAGE}/from_timestamp"] == pytest.approx([0.0, 0.48, 0.96])
    assert meta[f"videos/{IMAGE}/to_timestamp"] == pytest.approx([0.48, 0.96, 1.44])
    assert meta["data/file_index"] == [0, 0, 0]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.num_rows == 36
    assert set(data.column("episode_index").to_pylist()) == {0, 1, 2}
    assert data.column("index").to_pylist() == list(range(36))
    assert data.column("timestamp").to_pylist()[12] == pytest.approx(0.0)
    assert IMAGE not in data.column_names
    with av.open(str(root / f"videos/{IMAGE}/chunk-000/file-000.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 36
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pydict()
    assert tasks == {"task_index": [0], "task": ["demonstration"]}  # "task" is the pandas index column
    stats = json.loads((root / "meta/stats.json").read_text())
    expected_mean = np.concatenate([e.ee for e in episodes]).mean(0).tolist()
    assert stats["observation.state"]["mean"] == pytest.approx(expected_mean, abs=1e-6)
    assert np.array(stats[IMAGE]["mean"]).shape == (3, 1, 1)


def test_each_video_file_decoded_once(tmp_path: Path, episodes: list[Episode], monkeypatch) -> None:
    calls: list[Path] = []
    real = lerobot_reader._decode_video_file

    def counting(path, shape):
        calls.append(path)
        return real(path, shape)

    monkeypatch.setattr(lerobot_reader, "_decode_video_file", counting)
    root = tmp_path / "one"
    write_lerobot(root, episodes)
    read_lerobot(root)
    assert len(calls) == 1
    calls.clear()
    root = tmp_path / "two"
    write_lerobot(root, episodes, episodes_per_file=2)
    dataset = read_lerobot(root)
    assert len(calls) == 2 and len(set(calls)) == 2
    assert (root / "data/chunk-000/file-001.parquet").is_file()
    for original, loaded in zip(episodes, dataset):
        np.testing.assert_array_equal(loaded.ee, original.ee)
        assert mean_abs_error(loaded.frames, original.frames) < 5.0


def test_png_images_in_parquet_are_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for channels in (1, 3, 4):
        episodes = [smooth_episode(rng, f"e{i}", length=5, height=7, width=9, channels=channels) for i in range(2)]
        root = tmp_path / f"png{channels}"
        write_lerobot(root, episodes, image_storage="image")
        info = json.loads((root / "meta/info.json").read_text())
        assert info["features"][IMAGE]["dtype"] == "image" and info["video_path"] is None
        assert not (root / "videos").exists()
        dataset = read_lerobot(root)
        assert dataset.meta["image_storage"] == "image"
        for original, loaded in zip(episodes, dataset):
            np.testing.assert_array_equal(loaded.frames, original.frames)


def test_odd_sizes_and_grey_video(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for channels in (1, 3):
        episodes = [smooth_episode(rng, f"e{i}", length=8, height=15, width=17, channels=channels) for i in range(2)]
        root = tmp_path / f"odd{channels}"
        write_lerobot(root, episodes)
        dataset = read_lerobot(root)
        for original, loaded in zip(episodes, dataset):
            assert loaded.frames.shape == (8, 15, 17, channels)
            assert mean_abs_error(loaded.frames, original.frames) < 5.0


def test_splits_round_trip_contiguous_or_not(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes, splits={"train": ["demo_0", "demo_1"], "valid": ["demo_2"]})
    assert json.loads((root / "meta/info.json").read_text())["splits"] == {"train": "0:2", "valid": "2:3"}
    assert read_lerobot(root).splits == {"train": ["episode_000000", "episode_000001"], "valid": ["episode_000002"]}
    # A split that is not one run of episodes is written as comma-joined runs (robomimic masks can be any set).
    other = tmp_path / "b"
    write_lerobot(other, episodes, splits={"train": ["demo_0", "demo_2"], "valid": ["demo_1"], "none": []})
    assert json.loads((other / "meta/info.json").read_text())["splits"] == {"train": "0:1,2:3", "valid": "1:2", "none": "0:0"}
    names = read_lerobot(other).names
    assert read_lerobot(other).splits == {"train": [names[0], names[2]], "valid": [names[1]], "none": []}
    with pytest.raises(DataError, match="not being written"):
        write_lerobot(tmp_path / "c", episodes, splits={"train": ["demo_9"]})


def test_overwrite_rules(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    with pytest.raises(DataError, match="already exists") as info:
        write_lerobot(root, episodes[:1])
    assert str(root) in str(info.value)
    write_lerobot(root, episodes[:1], overwrite=True)
    assert len(read_lerobot(root)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a LeRobot dataset"):
        write_lerobot(precious, episodes, overwrite=True)
    assert (precious / "thesis.txt").read_text() == "keep me"


def test_writer_argument_errors(tmp_path: Path, episodes: list[Episode]) -> None:
    with pytest.raises(InputError, match="fps"):
        write_lerobot(tmp_path / "a", episodes, fps=0)
    with pytest.raises(InputError, match="codec"):
        write_lerobot(tmp_path / "a", episodes, codec="prores")
    rgba = [smooth_episode(np.random.default_rng(0), "x", channels=4)]
    with pytest.raises(DataError, match="4 channels"):
        write_lerobot(tmp_path / "a", rgba)
    mixed = [episodes[0], smooth_episode(np.random.default_rng(0), "y", height=8, width=8)]
    with pytest.raises(DataError, match="one LeRobot feature needs one shape"):
        write_lerobot(tmp_path / "a", mixed)
    assert not (tmp_path / "a").exists()


def test_missing_key_lists_features(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    with pytest.raises(DataError, match="'observation.images.wrist' not found") as info:
        read_lerobot(root, image_key="observation.images.wrist")
    message = str(info.value)
    assert "info.json" in message and IMAGE in message and "observation.state" in message and "action" in message
    with pytest.raises(DataError, match="target key 'observation.eef' not found"):
        read_lerobot(root, ee_key="observation.eef")


def test_missing_and_corrupt_video_name_the_file(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    video = root / f"videos/{IMAGE}/chunk-000/file-000.mp4"
    video.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(DataError, match="cannot decode video") as info:
        read_lerobot(root)
    assert str(video) in str(info.value)
    video.unlink()
    with pytest.raises(DataError, match="missing") as info:
        read_lerobot(root)
    assert str(video) in str(info.value)


def rewrite_episode_meta(root: Path, column: str, values: list) -> None:
    table = pq.read_table(root / EPISODES_FILE)
    index = table.column_names.index(column)
    replaced = table.set_column(index, column, pa.array(values, table.schema.field(column).type))
    pq.write_table(replaced, root / EPISODES_FILE)


def test_timestamp_matching_tolerance_and_missing_frame(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes, fps=50)
    exact = read_lerobot(root)
    column = f"videos/{IMAGE}/from_timestamp"
    # 3 ms off is outside LeRobot's 1e-4 s but well inside half a frame (10 ms): same frames, counted as fallbacks.
    rewrite_episode_meta(root, column, [0.003, 0.24, 0.48])
    shifted = read_lerobot(root)
    assert shifted.meta["timestamp_fallback_matches"] == 12
    for a, b in zip(exact, shifted):
        np.testing.assert_array_equal(a.frames, b.frames)
    # Episode 2 pointing past the end of the video: its frames are missing.
    rewrite_episode_meta(root, column, [0.0, 0.24, 0.6])
    with pytest.raises(DataError, match="no frame at") as info:
        read_lerobot(root)
    assert "episode_000002" in str(info.value) and "file-000.mp4" in str(info.value)


def test_variable_length_list_columns_are_read(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    index = table.column_names.index("observation.state")
    table = table.set_column(index, "observation.state", table.column("observation.state").cast(pa.list_(pa.float32())))
    pq.write_table(table, path)
    for original, loaded in zip(episodes, read_lerobot(root)):
        np.testing.assert_array_equal(loaded.ee, original.ee)


def test_old_versions_and_missing_metadata(tmp_path: Path, episodes: list[Episode]) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_lerobot(tmp_path / "nowhere")
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["codebase_version"] = "v2.1"
    info_path.write_text(json.dumps(info))
    with pytest.raises(DataError, match="v2.1"):
        read_lerobot(root)
    info_path.unlink()
    with pytest.raises(DataError, match="info.json is missing"):
        read_lerobot(root)


def test_rows_missing_from_data_file(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).slice(0, 30), path)
    with pytest.raises(DataError, match="episode 2 should have 12 rows"):
        read_lerobot(root)


def test_non_finite_state_is_rejected(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    state = np.concatenate([e.ee for e in episodes])
    state[13, 0] = np.nan
    index = table.column_names.index("observation.state")
    column = pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), 3)
    table = table.set_column(index, "observation.state", column)
    pq.write_table(table, path)
    with pytest.raises(DataError, match=r"episode_000001.*observation\.state.*NaN"):
        read_lerobot(root)


def test_episode_metadata_without_video_columns(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, episodes)
    table = pq.read_table(root / EPISODES_FILE)
    pq.write_table(table.drop_columns([f"videos/{IMAGE}/from_timestamp"]), root / EPISODES_FILE)
    with pytest.raises(DataError, match=r"episode 0 lacks \['videos/observation.images.top/from_timestamp'\]"):
        read_lerobot(root)
