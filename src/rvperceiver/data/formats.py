"""Open any supported dataset by its path: the format is told by what the path is, not by a flag."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rvperceiver.data import lerobot, robomimic
from rvperceiver.data.episodes import EpisodeSet
from rvperceiver.errors import DataError

__all__ = ["open_episodes", "detect_format", "list_keys", "DEFAULT_KEYS", "HDF5_SUFFIXES"]

HDF5_SUFFIXES = (".hdf5", ".h5")
# (image key, end-effector key) used when the caller names none: the conventional keys of each format.
DEFAULT_KEYS: dict[str, tuple[str, str]] = {
    "robomimic": (robomimic.DEFAULT_IMAGE_KEY, robomimic.DEFAULT_EE_KEY),
    "lerobot": (lerobot.DEFAULT_IMAGE_KEY, lerobot.DEFAULT_EE_KEY),
}


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"robomimic"`` for an ``.hdf5``/``.h5`` file, ``"lerobot"`` for a directory with ``meta/info.json``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist")
    if path.is_file():
        if path.suffix.lower() in HDF5_SUFFIXES:
            return "robomimic"
        in_lerobot_tree = path.suffix in (".parquet", ".mp4", ".json")
        hint = " (pass the LeRobot dataset's root directory instead)" if in_lerobot_tree else ""
        raise DataError(
            f"cannot tell the format of {path}: expected a robomimic file ending in .hdf5/.h5 or a LeRobot v3 "
            f"directory with meta/info.json{hint}"
        )
    if (path / "meta" / "info.json").is_file():
        return "lerobot"
    raise DataError(
        f"cannot tell the format of directory {path}: it has no meta/info.json, so it is not a LeRobot v3 dataset"
    )


def open_episodes(
    path: str | os.PathLike[str],
    image_key: str | None = None,
    ee_key: str | None = None,
    *,
    image_keys: Sequence[str] | None = None,
    target_key: str | None = None,
    streaming: bool = False,
    video_cache_bytes: int = 256 << 20,
) -> EpisodeSet:
    """Read the dataset at ``path`` with the reader its format needs; ``None`` keys take the format's defaults.

    One naming scheme for both formats: ``image_keys`` (cameras, side by side), ``target_key`` (any numeric
    per-step key: an end-effector position, ``action``/``actions``, ...); ``image_key``/``ee_key`` are their older
    one-camera names. Keys are the dataset's own (robomimic ``obs/<key>`` or a demo-level dataset, LeRobot
    features). ``streaming`` leaves the frames on disk, read per window (``rvperceiver.data.lazy``).
    """
    kind = detect_format(path)
    default_image, default_ee = DEFAULT_KEYS[kind]
    cameras = tuple(image_keys) if image_keys else (image_key if image_key is not None else default_image,)
    target = target_key if target_key is not None else (ee_key if ee_key is not None else default_ee)
    if kind == "robomimic":
        return robomimic.read_robomimic(path, image_keys=cameras, target_key=target, streaming=streaming)
    return lerobot.read_lerobot(
        path, image_keys=cameras, target_key=target, streaming=streaming, video_cache_bytes=video_cache_bytes
    )


def list_keys(path: str | os.PathLike[str]) -> dict[str, object]:
    """Every per-frame key of a dataset with its per-frame shape and dtype, and which could be the frames or the
    end-effector target, read from metadata only (no frames are decoded).

    robomimic: the datasets under ``data/<first demo>/obs``; LeRobot: the ``features`` of ``meta/info.json``.
    An image candidate is uint8 ``[H, W, C]`` (or a LeRobot ``video``/``image`` feature); a target candidate is a
    float vector of 2 to 7 values (positions, possibly with orientation).
    """
    import json

    import numpy as np

    kind = detect_format(path)
    path = Path(path)
    keys: list[dict[str, object]] = []
    if kind == "robomimic":
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                data = handle.get("data")
                demos = sorted(k for k in data.keys() if isinstance(data[k], h5py.Group)) if data is not None else []
                obs = data[demos[0]].get("obs") if demos else None
                if obs is None:
                    raise DataError(f"{path}: no data/<demo>/obs group to list keys from")
                for name, dataset in obs.items():
                    if isinstance(dataset, h5py.Dataset):
                        keys.append({"key": name, "shape": list(dataset.shape[1:]), "dtype": str(dataset.dtype)})
        except OSError as error:
            raise DataError(f"cannot open {path} as HDF5: {error}") from error
    else:
        info = json.loads((path / "meta" / "info.json").read_text(encoding="utf-8"))
        for name, feature in (info.get("features") or {}).items():
            if isinstance(feature, dict):
                keys.append({"key": name, "shape": list(feature.get("shape") or []), "dtype": str(feature.get("dtype"))})

    def is_image(entry: dict[str, object]) -> bool:
        shape, dtype = entry["shape"], entry["dtype"]
        if dtype in ("video", "image"):
            return True
        return dtype == "uint8" and isinstance(shape, list) and len(shape) == 3 and shape[-1] in (1, 3, 4)

    def is_target(entry: dict[str, object]) -> bool:
        shape, dtype = entry["shape"], str(entry["dtype"])
        floating = dtype.startswith("float") and np.dtype(dtype).kind == "f"
        return floating and isinstance(shape, list) and len(shape) == 1 and 2 <= int(shape[0]) <= 7

    return {
        "path": str(path),
        "format": kind,
        "keys": keys,
        "image_key_candidates": [k["key"] for k in keys if is_image(k)],
        "ee_key_candidates": [k["key"] for k in keys if is_target(k)],
        "default_keys": dict(zip(("image", "ee"), DEFAULT_KEYS[kind])),
    }
