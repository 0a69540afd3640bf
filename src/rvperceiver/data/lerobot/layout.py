"""On-disk layout of a LeRobot v3.0 dataset: constants, path templates, and reading ``meta/info.json``.

The reader and the writer both build on these; the format itself is described in the package docstring.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rvperceiver.errors import DataError

DEFAULT_IMAGE_KEY = "observation.images.top"
DEFAULT_EE_KEY = "observation.state"
CODEBASE_VERSION = "v3.0"
TIMESTAMP_TOLERANCE_S = 1e-4
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
# Per-frame bookkeeping columns every LeRobot data file has; they are not returned as extras.
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
# Encoder options: constant quality, and the FFmpeg codec name LeRobot records in info.json.
SUPPORTED_CODECS: dict[str, tuple[dict[str, str], str]] = {
    "libx264": ({"crf": "18"}, "h264"),
    "libsvtav1": ({"crf": "20"}, "av1"),
    # mpeg4 has no crf; constant quantiser 2 is global_quality = 2 * FF_QP2LAMBDA (118) with the qscale flag.
    "mpeg4": ({"flags": "+qscale", "global_quality": str(2 * 118)}, "mpeg4"),
}
_PIXEL_FORMATS = {1: "gray", 3: "rgb24", 4: "rgba"}


def _read_info(root: Path) -> dict[str, Any]:
    info_path = root / "meta" / "info.json"
    if not root.exists():
        raise DataError(f"LeRobot dataset {root} does not exist")
    if not info_path.is_file():
        raise DataError(f"{root} is not a LeRobot dataset: {info_path} is missing")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{info_path} is not readable JSON ({error})") from error
    if not isinstance(info, dict):
        raise DataError(f"{info_path}: expected a JSON object, got {type(info).__name__}")
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise DataError(
            f"{info_path}: codebase_version is {version or 'missing'}; only LeRobot v3.x datasets are supported "
            f"(convert older ones with LeRobot's convert_dataset_v21_to_v30)"
        )
    if not isinstance(info.get("features"), dict):
        raise DataError(f"{info_path}: 'features' should be an object mapping feature names to specs")
    return info


def _image_shape(feature: Mapping[str, Any], key: str, root: Path) -> tuple[int, int, int]:
    shape = feature.get("shape")
    names = feature.get("names")
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise DataError(
            f"{root / 'meta/info.json'}: image key {key!r} should have a shape [H, W, C], got {shape!r}"
        )
    # LeRobot normally records [height, width, channels]; accept channels-first when the names say so.
    if isinstance(names, list) and len(names) == 3 and names[0] in ("channels", "channel", "c"):
        shape = [shape[1], shape[2], shape[0]]
    height, width, channels = shape
    if channels not in _PIXEL_FORMATS:
        raise DataError(
            f"{root / 'meta/info.json'}: image key {key!r} has {channels} channels; 1, 3 or 4 are supported"
        )
    return height, width, channels


def _format_path(info: Mapping[str, Any], template_key: str, root: Path, **fields: Any) -> str:
    template = info.get(template_key)
    if not isinstance(template, str):
        raise DataError(f"{root / 'meta/info.json'}: '{template_key}' template missing (got {template!r})")
    try:
        relative = template.format(**{k: int(v) if k != "video_key" else v for k, v in fields.items()})
    except (KeyError, IndexError, ValueError, TypeError) as error:
        raise DataError(f"{root / 'meta/info.json'}: cannot fill template {template!r} ({error})") from error
    # The templates come from the dataset itself: they must not point the reader outside the dataset directory.
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise DataError(
            f"{root / 'meta/info.json'}: '{template_key}' template {template!r} gives {relative!r}, which leaves the "
            "dataset directory; expected a path relative to it"
        )
    return relative
