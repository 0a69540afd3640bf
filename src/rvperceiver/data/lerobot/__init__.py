"""LeRobot v3.0 datasets, read and written with pyarrow and PyAV only (no ``lerobot`` install).

Layout (LeRobot ``CODEBASE_VERSION = "v3.0"``)::

    meta/info.json                                   codebase_version, fps, features, path templates, splits
    meta/stats.json                                  per-feature min/max/mean/std/count/q01/q10/q50/q90/q99
    meta/tasks.parquet                               task_index, with the task string as the pandas index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, data and video file indices,
                                                     dataset_from_index/to_index, videos/<key>/from_timestamp,
                                                     stats/<feature>/<stat> ...
    data/chunk-000/file-000.parquet                  per-frame rows of many episodes: timestamp, frame_index,
                                                     episode_index, index, task_index, the state list column ...
    videos/<image key>/chunk-000/file-000.mp4        many episodes concatenated in one stream

A frame of episode ``e`` is the video frame at ``videos/<key>/from_timestamp[e] + timestamp``, matched with
LeRobot's tolerance of 1e-4 s. Images may instead be stored in the parquet (feature dtype ``"image"``, a struct of
encoded ``bytes`` and ``path``); the reader decodes those with PyAV too (PNG, JPEG, ...).

The writer's default codec is H.264 (libx264, crf 18, yuv420p), with a keyframe every 2 frames as LeRobot
encodes: about as accurate and small as LeRobot's default AV1 on these frames, quiet (SVT-AV1 prints a banner to
stderr), and PyAV's bundled FFmpeg both encodes and decodes it. ``codec="libsvtav1"`` (decoded by libdav1d) and
``"mpeg4"`` also work; ``benchmarks/bench_convert.py`` measures each one's frame error and size (figures in the
README). Video is lossy, mostly because yuv420p halves the colour resolution; use ``image_storage="image"`` for
lossless PNG.
"""

from __future__ import annotations

# The ``X as X`` imports are explicit re-exports: names outside __all__ that were importable from this module
# before it became a package (the layout constants and the per-file video decoder).
from rvperceiver.data.lerobot.layout import CHUNKS_SIZE as CHUNKS_SIZE
from rvperceiver.data.lerobot.layout import CODEBASE_VERSION as CODEBASE_VERSION
from rvperceiver.data.lerobot.layout import DATA_PATH as DATA_PATH
from rvperceiver.data.lerobot.layout import DEFAULT_EE_KEY, DEFAULT_IMAGE_KEY, SUPPORTED_CODECS, TIMESTAMP_TOLERANCE_S
from rvperceiver.data.lerobot.layout import EPISODES_PATH as EPISODES_PATH
from rvperceiver.data.lerobot.layout import INDEX_COLUMNS as INDEX_COLUMNS
from rvperceiver.data.lerobot.layout import VIDEO_PATH as VIDEO_PATH
from rvperceiver.data.lerobot.reader import _decode_video_file as _decode_video_file
from rvperceiver.data.lerobot.reader import read_lerobot
from rvperceiver.data.lerobot.writer import write_lerobot

__all__ = [
    "read_lerobot",
    "write_lerobot",
    "DEFAULT_IMAGE_KEY",
    "DEFAULT_EE_KEY",
    "TIMESTAMP_TOLERANCE_S",
    "SUPPORTED_CODECS",
]
