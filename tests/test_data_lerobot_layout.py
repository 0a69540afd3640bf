"""The project's LeRobot writer, compared field by field with a dataset LeRobot's own code wrote.

The fixture ``../shared/fixtures/lerobot_v30_reacher`` was written by lerobot-dataset 0.4.4 (LeRobot's dataset
package: ``LeRobotDataset.create``, ``add_frame``, ``save_episode``, ``finalize``). A drift between what LeRobot
writes and what this project writes is a failing test here: ``info.json`` keys and types, parquet schemas with
their schema metadata, the columns of the episode metadata, ``stats.json``, and the video stream's parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rvperceiver.data.episodes import Episode
from rvperceiver.data.lerobot import read_lerobot, write_lerobot

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lerobot_v30_reacher"
IMAGE = "observation.images.top"
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
VIDEO = f"videos/{IMAGE}/chunk-000/file-000.mp4"
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="the shared LeRobot fixture is not beside the repo")


def info(root: Path) -> dict[str, Any]:
    return json.loads((root / "meta/info.json").read_text())


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture read by the project and written back with LeRobot's settings (AV1, its names and task)."""
    source = read_lerobot(FIXTURE)
    features = info(FIXTURE)["features"]
    return write_lerobot(
        tmp_path_factory.mktemp("rewritten") / "ds",
        source,
        fps=int(source.meta["fps"]),
        codec="libsvtav1",
        task=source.meta["tasks"][0],
        robot_type=source.meta["robot_type"],
        feature_names={key: features[key]["names"] for key in ("observation.state", "action")},
        splits=source.splits,
    )


@pytest.fixture(scope="module")
def default_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Episodes of another shape written with every default (H.264, no robot type, generated names)."""
    rng = np.random.default_rng(1)
    ramp = np.arange(16, dtype=np.uint8)[None, :, None, None] * 8  # smooth frames: no scene cut per frame
    episodes = [
        Episode(
            f"demo_{i}",
            np.broadcast_to(ramp + np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 16, 16, 3)).copy(),
            rng.normal(size=(n, 3)).astype(np.float32),
            {"actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32), "rewards": rng.normal(size=n)},
        )
        for i, n in enumerate((6, 9))
    ]
    return write_lerobot(tmp_path_factory.mktemp("default") / "ds", episodes, fps=25)


def type_tree(value: Any) -> Any:
    """The JSON types of a value, recursively (dict keys kept, list items by their first element)."""
    if isinstance(value, dict):
        return {key: type_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [type_tree(value[0])] if value else []
    return type(value).__name__


# ----- info.json ---------------------------------------------------------------------------------------------


def test_info_json_matches_field_by_field(rewritten: Path) -> None:
    theirs, ours = info(FIXTURE), info(rewritten)
    assert list(ours) == list(theirs)
    assert type_tree(ours) == type_tree(theirs)
    assert ours == theirs  # same data, same settings: every value agrees too


def test_default_info_json_has_lerobot_keys_and_types(default_output: Path) -> None:
    theirs, ours = info(FIXTURE), info(default_output)
    assert list(ours) == list(theirs)
    for key in theirs:
        if key == "robot_type":
            assert ours[key] is None  # LeRobot's create() takes robot_type=None too
        elif key != "features":
            assert type_tree(ours[key]) == type_tree(theirs[key]), key
    features = ours["features"]
    assert list(features)[:2] == [IMAGE, "observation.state"] and list(features)[-5:] == list(INDEX_FEATURES)
    image = features[IMAGE]
    assert type_tree(image) == type_tree(theirs["features"][IMAGE])
    assert {k: v for k, v in image["info"].items() if k != "video.codec"} == {
        **{k: v for k, v in theirs["features"][IMAGE]["info"].items() if k != "video.codec"},
        "video.height": 16,
        "video.width": 16,
        "video.fps": 25,
    }
    assert image["info"]["video.codec"] == "h264"
    for key in INDEX_FEATURES:
        assert features[key] == theirs["features"][key]
    for key in ("observation.state", "actions"):
        spec = features[key]
        assert type_tree(spec) == type_tree(theirs["features"]["observation.state"])
        assert len(spec["names"]) == spec["shape"][0]
    assert features["observation.state"]["names"] == ["x", "y", "z"]
    assert features["rewards"] == {"dtype": "float64", "shape": [1], "names": None}  # a scalar, like timestamp


# ----- parquet schemas -----------------------------------------------------------------------------------------


def test_data_parquet_schema_and_hf_metadata_match(rewritten: Path) -> None:
    theirs, ours = pq.read_schema(FIXTURE / DATA), pq.read_schema(rewritten / DATA)
    assert ours.remove_metadata().equals(theirs.remove_metadata())
    assert set(ours.metadata) == set(theirs.metadata) == {b"huggingface"}
    hf_theirs = json.loads(theirs.metadata[b"huggingface"])
    hf_ours = json.loads(ours.metadata[b"huggingface"])
    assert hf_ours["info"]["features"] == hf_theirs["info"]["features"]


def test_default_data_parquet_types(default_output: Path) -> None:
    theirs, ours = pq.read_schema(FIXTURE / DATA), pq.read_schema(default_output / DATA)
    assert ours.names == ["observation.state", "actions", "rewards", *INDEX_FEATURES]
    for name in ("observation.state", *INDEX_FEATURES):
        assert ours.field(name).type == theirs.field(name).type, name
    assert ours.field("actions").type == theirs.field("action").type
    hf = json.loads(ours.metadata[b"huggingface"])["info"]["features"]
    assert hf["rewards"] == {"dtype": "float64", "_type": "Value"}
    assert hf["actions"] == json.loads(theirs.metadata[b"huggingface"])["info"]["features"]["action"]


def test_episode_metadata_columns_match(rewritten: Path) -> None:
    theirs, ours = pq.read_schema(FIXTURE / EPISODES), pq.read_schema(rewritten / EPISODES)
    assert ours.names == theirs.names
    assert ours.equals(theirs, check_metadata=True)  # neither carries schema metadata
    table = pq.read_table(rewritten / EPISODES).to_pydict()
    reference = pq.read_table(FIXTURE / EPISODES).to_pydict()
    for column in ours.names:
        if not column.startswith("stats/"):
            assert table[column] == reference[column], column
    # Exact statistics of the same values (LeRobot's quantiles are estimates; min/max/mean/count are not).
    for stat in ("min", "max", "count"):
        assert table[f"stats/observation.state/{stat}"] == reference[f"stats/observation.state/{stat}"]
    np.testing.assert_allclose(
        table["stats/action/mean"], reference["stats/action/mean"], rtol=1e-6, atol=1e-7
    )


def test_default_episode_metadata_columns(default_output: Path) -> None:
    theirs, ours = pq.read_schema(FIXTURE / EPISODES), pq.read_schema(default_output / EPISODES)
    role = {"observation.state": "observation.state", "actions": "action", "rewards": "timestamp"}
    action_stats = [name for name in theirs.names if name.startswith("stats/action/")]
    at = theirs.names.index(action_stats[0])
    renamed = [name.replace("/action/", f"/{key}/") for key in ("actions", "rewards") for name in action_stats]
    expected = theirs.names[:at] + renamed + theirs.names[at + len(action_stats) :]
    assert ours.names == expected
    for name in ours.names:
        parts = name.split("/")
        counterpart = name if not name.startswith("stats/") else "/".join(["stats", role.get(parts[1], parts[1]), parts[2]])
        assert ours.field(name).type == theirs.field(counterpart).type, name


def test_tasks_parquet_has_the_task_as_pandas_index(rewritten: Path, default_output: Path) -> None:
    theirs = pq.read_schema(FIXTURE / "meta/tasks.parquet")
    pandas_theirs = json.loads(theirs.metadata[b"pandas"])
    for root, task in ((rewritten, read_lerobot(FIXTURE).meta["tasks"][0]), (default_output, "demonstration")):
        ours = pq.read_schema(root / "meta/tasks.parquet")
        pandas_ours = json.loads(ours.metadata[b"pandas"])
        assert list(pandas_ours) == list(pandas_theirs)
        assert [list(c) for c in pandas_ours["columns"]] == [list(c) for c in pandas_theirs["columns"]]
        assert pandas_ours["column_indexes"] == pandas_theirs["column_indexes"]
        # Same columns and types; LeRobot 0.4.4 left the index unnamed, current LeRobot names it "task".
        assert [ours.field(i).type for i in range(2)] == [theirs.field(i).type for i in range(2)]
        assert pandas_ours["index_columns"] == ["task"] and len(pandas_theirs["index_columns"]) == 1
        # How LeRobot reads it (io_utils.load_tasks, dataset_metadata.get_task_index, __getitem__).
        tasks = pd.read_parquet(root / "meta/tasks.parquet")
        tasks.index.name = "task"
        assert list(tasks.columns) == ["task_index"]
        assert tasks.iloc[0].name == task
        assert task in tasks.index and int(tasks.loc[task].task_index) == 0
        # The project's reader reads both layouts.
        assert read_lerobot(root).meta["tasks"] == [task]
    assert read_lerobot(FIXTURE).meta["tasks"] == [pd.read_parquet(FIXTURE / "meta/tasks.parquet").index[0]]


def test_stats_json_has_lerobot_keys_and_shapes(rewritten: Path) -> None:
    theirs = json.loads((FIXTURE / "meta/stats.json").read_text())
    ours = json.loads((rewritten / "meta/stats.json").read_text())
    assert set(ours) == set(theirs)
    for key in theirs:
        assert list(ours[key]) == list(theirs[key]), key
        for stat in theirs[key]:
            assert np.array(ours[key][stat]).shape == np.array(theirs[key][stat]).shape, (key, stat)
            assert type_tree(ours[key][stat]) == type_tree(theirs[key][stat]), (key, stat)
    assert ours["observation.state"]["min"] == theirs["observation.state"]["min"]
    assert ours["observation.state"]["count"] == theirs["observation.state"]["count"] == [200]


# ----- video stream --------------------------------------------------------------------------------------------


def stream_parameters(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keyframes = [frame.key_frame for frame in container.decode(stream)]
        context = stream.codec_context
        return {
            "container": container.format.name,
            "codec": context.name,
            "pix_fmt": context.pix_fmt,
            "size": (context.width, context.height),
            "average_rate": stream.average_rate,
            "time_base": stream.time_base,
            "start_time": stream.start_time,
            "frames": len(keyframes),
            "keyframes": [i for i, key in enumerate(keyframes) if key],
            "streams": (len(container.streams.video), len(container.streams.audio)),
        }


def test_video_stream_parameters_match(rewritten: Path) -> None:
    assert stream_parameters(rewritten / VIDEO) == stream_parameters(FIXTURE / VIDEO)


def test_default_video_stream_parameters(default_output: Path) -> None:
    theirs, ours = stream_parameters(FIXTURE / VIDEO), stream_parameters(default_output / VIDEO)
    assert ours["codec"] == "h264" and ours["size"] == (16, 16) and ours["average_rate"] == 25 and ours["frames"] == 15
    assert ours["keyframes"] == list(range(0, 15, 2)) == theirs["keyframes"][: len(ours["keyframes"])]
    for key in ("container", "pix_fmt", "start_time", "streams"):
        assert ours[key] == theirs[key], key


def test_image_storage_uses_the_datasets_image_struct(tmp_path: Path) -> None:
    """``dtype: image`` features are parquet structs of encoded bytes and a path, as ``datasets.Image`` stores them."""
    rng = np.random.default_rng(2)
    episodes = [Episode("e", rng.integers(0, 255, size=(4, 8, 8, 3), dtype=np.uint8), np.zeros((4, 3), np.float32))]
    root = write_lerobot(tmp_path / "png", episodes, image_storage="image")
    schema = pq.read_schema(root / DATA)
    assert str(schema.field(IMAGE).type) == "struct<bytes: binary, path: string>"
    assert schema.names[0] == IMAGE  # features order: the image first, as in info.json
    assert json.loads(schema.metadata[b"huggingface"])["info"]["features"][IMAGE] == {"_type": "Image"}
    assert info(root)["video_path"] is None and info(root)["features"][IMAGE]["dtype"] == "image"


def test_tasks_written_before_the_fix_are_still_read(default_output: Path, tmp_path: Path) -> None:
    """Older project files had the task as a plain column, without pandas metadata."""
    import shutil

    import pyarrow as pa

    old = tmp_path / "old"
    shutil.copytree(default_output, old)
    pq.write_table(pa.table({"task_index": [0], "task": ["stack the blocks"]}), old / "meta/tasks.parquet")
    assert read_lerobot(old).meta["tasks"] == ["stack the blocks"]
