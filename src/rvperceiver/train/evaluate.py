"""Validation metrics of a policy on a dataset, identical in one process and across a torchrun group."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from rvperceiver.train.config import TrainConfig
from rvperceiver.train.distributed import DistributedContext, all_reduce_sum
from rvperceiver.train.metrics import EvalMetrics, MetricAccumulator


@torch.no_grad()
def evaluate(
    policy: nn.Module,
    dataset: Dataset | None,
    config: TrainConfig,
    context: DistributedContext | None = None,
) -> EvalMetrics | None:
    """Validation metrics of ``policy`` on the first ``eval_batches × batch_size`` examples (0 = all).

    In a distributed run the examples are split over the processes and the metric sums all-reduced, so every
    process gets the metrics of the same examples a single process would use. None for an empty/absent set.
    """
    context = context or DistributedContext()
    if dataset is None or len(dataset) == 0:  # type: ignore[arg-type]
        return None
    size = len(dataset)  # type: ignore[arg-type]
    limit = size if config.eval_batches == 0 else min(size, config.eval_batches * config.batch_size)
    local = Subset(dataset, list(range(context.rank, limit, context.world_size)))
    loader = DataLoader(
        local,
        batch_size=max(1, config.batch_size // context.world_size),
        shuffle=False,
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(0),  # leaves the global RNG untouched
    )
    device = next(policy.parameters()).device
    was_training = policy.training
    policy.eval()
    accumulator: MetricAccumulator | None = None
    for x, y in loader:
        x = {k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)
        y = y.to(device).float()
        with autocast_for(config, device):
            prediction_norm = policy(x).float()
        target_norm = policy.target_norm.normalize(y)
        prediction = policy.target_norm.denormalize(prediction_norm)
        if accumulator is None:
            accumulator = MetricAccumulator(y[0].numel(), device=device)
        accumulator.update(prediction, y, prediction_norm, target_norm)
    if accumulator is None:  # this rank had no examples; still join the all-reduce
        accumulator = MetricAccumulator(int(np.prod(policy.target_shape)), device=device)
    all_reduce_sum(accumulator.state, context)
    policy.train(was_training)
    return accumulator.compute() if accumulator.count > 0 else None


def autocast_bf16(config: TrainConfig, device: torch.device) -> bool:
    """Whether the step runs under bf16 autocast: on CUDA when ``amp`` is on."""
    return bool(config.amp) and device.type == "cuda"


def autocast_for(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``amp`` is on; CPU runs stay float32 (and bit-reproducible)."""
    if autocast_bf16(config, device):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
