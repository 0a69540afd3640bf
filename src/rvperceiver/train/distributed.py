"""Data-parallel training across processes (``torchrun``), and the deterministic sample stream it shards.

One global stream of example indices is a pure function of ``(seed, dataset size)``: epoch ``e`` is the
permutation drawn from a generator seeded with ``seed + e``, and the stream is epoch 0, epoch 1, … back to back.
Step ``k`` takes the global batch ``stream[k*B : (k+1)*B]``; in a run of ``W`` processes, rank ``r`` takes the
``r``-th contiguous slice of ``B/W`` of it. Consequences that the tests rely on:

* resuming at step ``k`` needs no sampler state at all — the stream is recomputed from the step;
* ``W`` processes see exactly the examples one process would, so with gradients averaged over ranks
  (what DDP does) a ``W``-process run follows the 1-process run with the same global batch.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them. The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rvperceiver.errors import ConfigError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_process_group: bool = False  # True if init_distributed created the group (and should destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs, writes metrics and writes checkpoints."""
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA (this process's local GPU) when available, else CPU; otherwise the named device."""
    if preference == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={preference!r} was requested but CUDA is not available on this machine")
        return torch.device("cuda", local_rank) if preference == "cuda" else torch.device(preference)
    return torch.device(preference)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {value!r}") from None


def init_distributed(device_preference: str = "auto") -> DistributedContext:
    """Join the process group described by torchrun's environment variables (single process if there are none).

    If the caller already initialised ``torch.distributed``, that group is used and left alone on exit.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
        device = resolve_device(device_preference, local_rank)
        return DistributedContext(rank, world_size, local_rank, device, dist.get_backend(), False)
    if world_size <= 1:
        return DistributedContext(device=resolve_device(device_preference, 0))
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    device = resolve_device(device_preference, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device, backend, True)


def shutdown_distributed(context: DistributedContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if context.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum ``tensor`` over all processes, in place (identity in a single process)."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Average ``tensor`` over all processes, in place (identity in a single process)."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= context.world_size
    return tensor


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: a permutation drawn from a CPU generator seeded with ``seed + epoch``."""
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(num_examples, generator=generator)


def global_batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The example indices of global batch ``step`` (may straddle an epoch boundary: the stream is continuous)."""
    if num_examples < 1:
        raise ConfigError("the training set is empty")
    start = step * batch_size
    indices: list[int] = []
    epoch, offset = divmod(start, num_examples)
    while len(indices) < batch_size:
        order = epoch_permutation(num_examples, seed, epoch)
        take = order[offset : offset + batch_size - len(indices)]
        indices.extend(int(i) for i in take)
        epoch, offset = epoch + 1, 0
    return indices


class StreamBatchSampler:
    """Infinite batch sampler over the global stream, yielding this rank's slice of each step's batch.

    Use as ``DataLoader(dataset, batch_sampler=StreamBatchSampler(...))``. Starting at ``start_step`` reproduces
    the stream an uninterrupted run would see from that step on. The permutation of the current epoch is cached,
    so drawing a batch costs O(batch) after the first of each epoch.
    """

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_examples < 1:
            raise ConfigError("the training set is empty: cannot draw batches")
        if batch_size % world_size != 0:
            raise ConfigError(
                f"batch_size={batch_size} must be divisible by the number of processes ({world_size}): "
                "it is the global batch, split evenly over the processes"
            )
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size
        self.local_batch = batch_size // world_size

    def __iter__(self) -> Iterator[list[int]]:
        n, b = self.num_examples, self.batch_size
        epoch, offset = divmod(self.start_step * b, n)
        order = epoch_permutation(n, self.seed, epoch)
        lo, hi = self.rank * self.local_batch, (self.rank + 1) * self.local_batch
        while True:
            batch: list[int] = []
            while len(batch) < b:
                take = order[offset : offset + b - len(batch)]
                batch.extend(int(i) for i in take)
                offset += len(take)
                if offset >= n:
                    epoch, offset = epoch + 1, 0
                    order = epoch_permutation(n, self.seed, epoch)
            yield batch[lo:hi]
