"""Atomic text writes and the JSON encoder every record goes through."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rvperceiver.utils import atomic_write_text, json_default


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text(encoding="utf-8") == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_json_default_covers_numpy_tensors_dataclasses_and_paths() -> None:
    @dataclasses.dataclass
    class Point:
        x: float
        y: float

    record = {"scalar": np.float32(0.5), "array": np.arange(3), "tensor": torch.tensor([1.0, 2.0]),
              "point": Point(1.0, 2.0), "path": Path("runs/a")}
    assert json.loads(json.dumps(record, default=json_default)) == {
        "scalar": 0.5, "array": [0, 1, 2], "tensor": [1.0, 2.0], "point": {"x": 1.0, "y": 2.0}, "path": "runs/a"}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        json.dumps({"x": object()}, default=json_default)
