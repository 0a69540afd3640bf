from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from rvperceiver.model.policy import build_policy
from rvperceiver.train.config import load_config
from rvperceiver.train.loop import train
from rvperceiver.train.stats_cache import StatsCache, dataset_fingerprint, statistics_state

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SETTINGS = {"view": {"transform": "rfft"}, "input_shape": [2, 8, 8, 3], "t_obs": 2}
pytestmark = pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")


def _data_file(tmp_path: Path, content: bytes = b"episodes" * 100) -> Path:
    path = tmp_path / "demos.hdf5"
    path.write_bytes(content)
    return path


def _tensors() -> dict[str, torch.Tensor]:
    return {"view.pre_mean": torch.arange(6.0).reshape(3, 2), "target_norm.scale": torch.tensor([0.5, 2.0])}


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    cache = StatsCache(_data_file(tmp_path))
    assert cache.directory == tmp_path / "demos.hdf5.rvstats"
    assert cache.load(SETTINGS) is None
    assert cache.save(SETTINGS, _tensors())
    loaded = StatsCache(tmp_path / "demos.hdf5").load(SETTINGS)  # a new run finds it
    assert loaded is not None and set(loaded) == set(_tensors())
    for name, value in _tensors().items():
        assert torch.equal(loaded[name], value)
    meta = json.loads(next(cache.directory.glob("*.json")).read_text())
    assert meta["settings"] == SETTINGS


def test_key_depends_on_settings_and_data(tmp_path: Path) -> None:
    path = _data_file(tmp_path)
    cache = StatsCache(path)
    key = cache.key(SETTINGS)
    assert cache.key({**SETTINGS, "t_obs": 3}) != key
    assert cache.key({**SETTINGS, "view": {"transform": "dct"}}) != key
    path.write_bytes(b"episodez" * 100)  # same size, new content (and mtime)
    assert StatsCache(path).key(SETTINGS) != key


def test_fingerprint_samples_content_and_covers_directories(tmp_path: Path) -> None:
    root = tmp_path / "lerobot"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text("{}")
    (root / "data.parquet").write_bytes(b"x" * (3 << 20))
    before = dataset_fingerprint(root)
    assert [f["name"] for f in before] == ["data.parquet", "meta/info.json"]
    stat = (root / "data.parquet").stat()
    with open(root / "data.parquet", "r+b") as handle:  # change the tail, then forge the old mtime back
        handle.seek((3 << 20) - 1)
        handle.write(b"y")
    os.utime(root / "data.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = dataset_fingerprint(root)
    assert after[0]["mtime_ns"] == before[0]["mtime_ns"] and after[0]["size"] == before[0]["size"]
    assert after[0]["sample_sha256"] != before[0]["sample_sha256"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "bad_json", "nan"])
def test_corrupt_entry_is_recomputed_not_trusted(tmp_path: Path, damage: str) -> None:
    cache = StatsCache(_data_file(tmp_path))
    tensor_path, meta_path = cache.paths(SETTINGS)
    if damage == "nan":
        bad = _tensors()
        bad["view.pre_mean"][0, 0] = float("nan")
        cache.save(SETTINGS, bad)
    else:
        cache.save(SETTINGS, _tensors())
    if damage == "truncate":
        tensor_path.write_bytes(tensor_path.read_bytes()[:20])
    elif damage == "flip":
        data = bytearray(tensor_path.read_bytes())
        data[-1] ^= 0x01
        tensor_path.write_bytes(bytes(data))
    elif damage == "bad_json":
        meta_path.write_text("{")
    with pytest.warns(UserWarning, match="recomputing"):
        statistics, cached = cache.get_or_compute(SETTINGS, _tensors)
    assert not cached
    assert torch.equal(statistics["view.pre_mean"], _tensors()["view.pre_mean"])
    assert cache.load(SETTINGS) is not None  # the recomputed entry replaced the broken one


def test_unwritable_location_only_warns(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cache = StatsCache(_data_file(tmp_path), cache_dir=blocker / "cache")
    with pytest.warns(UserWarning, match="cannot write"):
        statistics, cached = cache.get_or_compute(SETTINGS, _tensors)
    assert not cached and set(statistics) == set(_tensors())


def test_training_reuses_the_cached_statistics(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 2, 8, 8, 3), generator=g, dtype=torch.uint8)
    y = torch.rand(24, 4, 3, generator=g)
    data = TensorDataset(x, y)
    path = _data_file(tmp_path)
    config = load_config(CONFIGS / "tiny.yaml", ["steps=1"])
    first = train(config, data, None, progress=False, stats_cache=StatsCache(path))
    assert first.statistics == "fitted"
    assert len(list((tmp_path / "demos.hdf5.rvstats").glob("*.safetensors"))) == 1
    second = train(config, data, None, progress=False, stats_cache=StatsCache(path))
    assert second.statistics == "cache"
    a, b = statistics_state(first.policy), statistics_state(second.policy)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert second.policy.view.is_fitted and second.policy.target_norm.is_fitted
    # A different view setting is a different entry.
    third = train(load_config(CONFIGS / "tiny.yaml", ["steps=1", "policy.view.transform=dct"]), data, None,
                  progress=False, stats_cache=StatsCache(path))
    assert third.statistics == "fitted"
    # Statistics hold every buffer of the view and the target normaliser, nothing of the backbone.
    fresh = build_policy(config.policy, (2, 8, 8, 3), (4, 3))
    assert all(name.split(".")[0] in ("view", "target_norm") for name in statistics_state(fresh))
