"""Open any supported dataset by its path: the format is told by what the path is, not by a flag."""

from __future__ import annotations

import os
from pathlib import Path

from rvperceiver.data import lerobot, robomimic
from rvperceiver.data.episodes import EpisodeSet
from rvperceiver.errors import DataError

__all__ = ["open_episodes", "detect_format", "DEFAULT_KEYS", "HDF5_SUFFIXES"]

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
    path: str | os.PathLike[str], image_key: str | None = None, ee_key: str | None = None
) -> EpisodeSet:
    """Read the dataset at ``path`` with the reader its format needs; ``None`` keys take the format's defaults."""
    kind = detect_format(path)
    default_image, default_ee = DEFAULT_KEYS[kind]
    image_key = image_key if image_key is not None else default_image
    ee_key = ee_key if ee_key is not None else default_ee
    if kind == "robomimic":
        return robomimic.read_robomimic(path, image_key=image_key, ee_key=ee_key)
    return lerobot.read_lerobot(path, image_key=image_key, ee_key=ee_key)
