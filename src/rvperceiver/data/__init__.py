"""Episodes on disk and in memory: robomimic HDF5 and LeRobot v3 readers/writers, sample index, window dataset."""

from rvperceiver.data.episodes import Episode, EpisodeSet, check_consistent, validate_episode
from rvperceiver.data.formats import DEFAULT_KEYS, detect_format, open_episodes
from rvperceiver.data.index import SampleIndex, split_episodes
from rvperceiver.data.lerobot import read_lerobot, write_lerobot
from rvperceiver.data.robomimic import read_robomimic, write_robomimic
from rvperceiver.data.windows import WindowDataset

__all__ = [
    "DEFAULT_KEYS",
    "Episode",
    "EpisodeSet",
    "SampleIndex",
    "WindowDataset",
    "check_consistent",
    "detect_format",
    "open_episodes",
    "read_lerobot",
    "read_robomimic",
    "split_episodes",
    "validate_episode",
    "write_lerobot",
    "write_robomimic",
]
