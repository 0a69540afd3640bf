"""Tests of the deterministic sharded stream and of a real 2-process torchrun run.

This file is also the worker script of that run: ``python -m torch.distributed.run ... test_train_distributed.py
OUT`` trains the tiny model and (on rank 0) writes the loss curve to ``OUT/losses.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from rvperceiver.errors import ConfigError
from rvperceiver.train.distributed import (
    DistributedContext,
    StreamBatchSampler,
    epoch_permutation,
    global_batch_indices,
    init_distributed,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
pytestmark = pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")
WORKER_OVERRIDES = ["steps=6", "batch_size=8", "eval_every=3", "eval_batches=0", "log_every=1", "checkpoint_every=100"]


def _dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 2, 8, 8, 3), generator=g, dtype=torch.uint8)
    y = x[:, -1, :2, :2, :].float().mean(dim=(1, 2))[:, None, :].repeat(1, 4, 1) / 2550.0
    return TensorDataset(x, y)


def _run_worker(out_dir: Path) -> list[float]:
    from rvperceiver.train.config import load_config
    from rvperceiver.train.loop import train

    config = load_config(CONFIGS / "tiny.yaml", WORKER_OVERRIDES)
    data = _dataset()
    result = train(config, data, data, out_dir=out_dir, progress=False)
    if result.evals:
        (out_dir / f"evals_{os.environ.get('RANK', '0')}.json").write_text(json.dumps(result.evals))
    return result.train_losses


def test_shards_partition_each_global_batch() -> None:
    world = 4
    shards = [list(islice(StreamBatchSampler(10, 8, seed=3, rank=r, world_size=world), 5)) for r in range(world)]
    for step in range(5):
        combined = [i for r in range(world) for i in shards[r][step]]
        assert combined == global_batch_indices(10, 8, seed=3, step=step)
        assert all(len(shards[r][step]) == 2 for r in range(world))


def test_stream_is_epoch_permutations_back_to_back() -> None:
    stream = [i for batch in islice(StreamBatchSampler(6, 4, seed=1), 6) for i in batch]  # 24 = 4 epochs
    for epoch in range(4):
        assert stream[6 * epoch : 6 * epoch + 6] == epoch_permutation(6, 1, epoch).tolist()
        assert sorted(stream[6 * epoch : 6 * epoch + 6]) == list(range(6))


def test_starting_at_step_k_continues_the_same_stream() -> None:
    uninterrupted = list(islice(StreamBatchSampler(7, 3, seed=5), 10))
    resumed = list(islice(StreamBatchSampler(7, 3, seed=5, start_step=4), 6))
    assert resumed == uninterrupted[4:]
    assert list(islice(StreamBatchSampler(7, 3, seed=6), 10)) != uninterrupted


def test_batch_must_split_evenly_over_processes() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        StreamBatchSampler(10, 6, seed=0, rank=0, world_size=4)
    with pytest.raises(ConfigError, match="empty"):
        StreamBatchSampler(0, 6, seed=0)


def test_single_process_context_without_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = init_distributed("cpu")
    assert context == DistributedContext(device=torch.device("cpu"))
    assert not context.enabled and context.is_main


def test_two_processes_follow_the_one_process_loss_curve(tmp_path: Path) -> None:
    single = _run_worker(tmp_path / "one")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        __file__, str(tmp_path / "two"),
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    double = json.loads((tmp_path / "two" / "losses.json").read_text())
    assert len(double) == len(single) == 6
    assert double == pytest.approx(single, abs=1e-5)
    # Metrics are all-reduced: both ranks report the evaluation of the whole validation set.
    evals = [json.loads((tmp_path / "two" / f"evals_{r}.json").read_text()) for r in (0, 1)]
    assert evals[0] == evals[1]
    assert evals[0][-1]["count"] == 40
    # Only rank 0 writes outputs.
    assert (tmp_path / "two" / "checkpoints" / "last" / "pretrained_model" / "config.json").is_file()
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["kind"] == "train" for line in lines) == 6


if __name__ == "__main__":  # the torchrun worker
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    losses = _run_worker(out)
    if os.environ.get("RANK", "0") == "0":
        (out / "losses.json").write_text(json.dumps(losses))
