"""rvperceiver.train: typed configs, the training loop, checkpoints, data-parallel runs and collapse diagnostics.

`load_config` reads a YAML file plus `a.b=c` overrides into a validated `TrainConfig`; `train` fits the policy's
statistics and trains it (one process or several under torchrun); `save_checkpoint`/`load_policy` store and
restore it with safetensors + JSON; `nmse`, `spread_ratio` and `collapse_verdict` tell a learning policy from one
that collapsed to the mean trajectory.
"""

from __future__ import annotations

from rvperceiver.train.checkpoint import (
    TrainingState,
    capture_rng_state,
    load_model_weights,
    load_policy,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
)
from rvperceiver.train.config import (
    DataConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    from_dict,
    load_config,
    to_dict,
    to_json,
    to_yaml,
)
from rvperceiver.train.distributed import DistributedContext, StreamBatchSampler, init_distributed
from rvperceiver.train.evaluate import evaluate
from rvperceiver.train.loop import CollapseWarning, TrainResult, lr_factor, train
from rvperceiver.train.metrics import EvalMetrics, MetricAccumulator, collapse_verdict, nmse, spread_ratio
from rvperceiver.train.stats_cache import StatsCache

__all__ = [
    "CollapseWarning",
    "DataConfig",
    "DistributedContext",
    "EvalMetrics",
    "MetricAccumulator",
    "OptimConfig",
    "ScheduleConfig",
    "StatsCache",
    "StreamBatchSampler",
    "TrainConfig",
    "TrainResult",
    "TrainingState",
    "capture_rng_state",
    "collapse_verdict",
    "evaluate",
    "from_dict",
    "init_distributed",
    "load_config",
    "load_model_weights",
    "load_policy",
    "load_training_state",
    "lr_factor",
    "nmse",
    "restore_rng_state",
    "save_checkpoint",
    "spread_ratio",
    "to_dict",
    "to_json",
    "to_yaml",
    "train",
]
