from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from rvperceiver.errors import ConfigError, NonFiniteError
from rvperceiver.model.policy import build_policy
from rvperceiver.train.checkpoint import load_policy
from rvperceiver.train.config import load_config
from rvperceiver.train.loop import CollapseWarning, TrainResult, lr_factor, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Tiny models trained for a few steps look collapsed; the warning itself is tested below with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")


def _dataset(m: int = 48, seed: int = 0) -> TensorDataset:
    """Two 8x8 RGB frames -> 4 future positions that depend on a corner patch of the last frame."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (m, 2, 8, 8, 3), generator=g, dtype=torch.uint8)
    corner = x[:, -1, :2, :2, :].float().mean(dim=(1, 2)) / 255.0
    y = corner[:, None, :] * torch.linspace(0.1, 0.2, 4)[None, :, None]
    return TensorDataset(x, y)


def _config(*overrides: str):
    return load_config(CONFIGS / "tiny.yaml", list(overrides))


def test_train_writes_metrics_and_checkpoint(tmp_path: Path) -> None:
    data = _dataset()
    config = _config("steps=10", "eval_every=5", "log_every=5", "checkpoint_every=5")
    result = train(config, data, _dataset(16, seed=1), out_dir=tmp_path, progress=False)
    assert isinstance(result, TrainResult)
    assert result.step == 10 and len(result.train_losses) == 10
    assert all(math.isfinite(v) for v in result.train_losses)
    assert result.statistics == "fitted"
    assert [e["step"] for e in result.evals] == [5, 10]
    assert result.final is not None and result.final.count == 16
    assert result.final.verdict in ("collapsed", "partial", "learning")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds.count("train") == 2 and kinds.count("eval") == 2
    assert {"loss", "lr", "grad_norm", "flops_per_step", "flops_per_s", "mfu"} <= set(records[1])
    train_lines = [r for r in records if r["kind"] == "train"]
    assert all(r["flops_per_step"] > 0 and r["flops_per_s"] > 0 for r in train_lines)
    assert all(r["mfu"] is None for r in train_lines)  # a CPU has no data-sheet peak
    assert {"nmse", "spread", "verdict", "mse_m", "rmse_m"} <= set(next(r for r in records if r["kind"] == "eval"))
    policy, loaded_config = load_policy(tmp_path)
    assert loaded_config == config
    x = data.tensors[0][:4]
    assert torch.equal(policy.predict(x), result.policy.predict(x))


def test_training_reduces_the_loss_on_a_learnable_task() -> None:
    # One latent-free path to success: a CNN on pixel tokens learns the corner mean quickly.
    data = _dataset(64)
    config = _config("steps=60", "eval_every=60", "policy.backbone=cnn", "policy.cnn.channels=[8]",
                     "policy.cnn.kernel_sizes=[3]", "policy.cnn.strides=[1]", "policy.cnn.num_keypoints=4",
                     "policy.cnn.mlp_channels=32", "policy.view.transform=identity", "policy.view.pre_norm=zscore",
                     "policy.view.post_norm=none", "optim.lr=1e-2")
    result = train(config, data, data, progress=False)
    first, last = sum(result.train_losses[:5]) / 5, sum(result.train_losses[-5:]) / 5
    assert last < 0.7 * first


def test_same_seed_same_run_and_other_seed_differs() -> None:
    data = _dataset()
    a = train(_config("steps=3"), data, None, progress=False)
    b = train(_config("steps=3"), data, None, progress=False)
    c = train(_config("steps=3", "seed=1"), data, None, progress=False)
    assert a.train_losses == b.train_losses
    assert a.train_losses != c.train_losses


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    data, valid = _dataset(), _dataset(16, seed=1)
    config = _config("steps=8", "eval_every=3", "checkpoint_every=100", "log_every=1")
    full = train(config, data, valid, out_dir=tmp_path / "full", progress=False)
    first = train(config, data, valid, out_dir=tmp_path / "cut", progress=False, stop_at_step=4)
    assert first.step == 4
    second = train(config, data, valid, out_dir=tmp_path / "cut", progress=False, resume=True)
    assert second.statistics == "checkpoint"
    assert second.step == 8
    assert first.train_losses + second.train_losses == full.train_losses
    expected = full.policy.state_dict()
    for name, value in second.policy.state_dict().items():
        assert torch.equal(value, expected[name]), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == list(range(1, 9))


def test_resume_drops_metrics_written_after_the_checkpoint(tmp_path: Path) -> None:
    data = _dataset()
    config = _config("steps=6", "log_every=1", "checkpoint_every=100")
    train(config, data, None, out_dir=tmp_path, progress=False, stop_at_step=3)
    with open(tmp_path / "metrics.jsonl", "a") as handle:  # as if a crashed run logged steps 4-5
        handle.write(json.dumps({"kind": "train", "step": 4, "loss": 9.9}) + "\n")
        handle.write(json.dumps({"kind": "train", "step": 5, "loss": 9.9}) + "\n")
    train(config, data, None, out_dir=tmp_path, progress=False, resume=True)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r.get("loss") != 9.9 for r in records)
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_resume_without_out_dir_is_an_error() -> None:
    with pytest.raises(ConfigError, match="resume"):
        train(_config(), _dataset(), None, resume=True, progress=False)


def test_non_finite_loss_names_the_step_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    data = _dataset()
    config = _config("steps=12", "checkpoint_every=4", "eval_every=100")
    torch.manual_seed(config.seed)
    policy = build_policy(config.policy, (2, 8, 8, 3), (4, 3))
    calls = {"training_forwards": 0}

    def poison(module: torch.nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        if module.training:
            calls["training_forwards"] += 1
            if calls["training_forwards"] == 7:
                return output * float("nan")
        return output

    policy.backbone.register_forward_hook(poison)
    with pytest.raises(NonFiniteError, match=r"step 7\b.*last good checkpoint \(step 4\)"):
        train(config, data, None, policy=policy, out_dir=tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())[-1] == "000004"
    assert (tmp_path / "checkpoints" / "last").resolve().name == "000004"
    loaded, _ = load_policy(tmp_path)
    assert all(bool(torch.isfinite(p).all()) for p in loaded.parameters())


def test_collapsed_policy_triggers_a_warning() -> None:
    data = _dataset(32)
    config = _config("steps=2", "eval_every=1", "eval_batches=0", "optim.lr=1e-12", "schedule.warmup_steps=0")
    torch.manual_seed(0)
    policy = build_policy(config.policy, (2, 8, 8, 3), (4, 3))
    with torch.no_grad():  # all-zero weights: the same output for every input, i.e. the mean predictor
        for p in policy.backbone.parameters():
            p.zero_()
    with pytest.warns(CollapseWarning, match="collapsed"):
        result = train(config, data, data, policy=policy, progress=False)
    assert result.final is not None and result.final.verdict == "collapsed"
    # The zero output denormalises to the fitted per-coordinate target mean (pooled over time steps), which is
    # no better than the per-(step, coordinate) mean: NMSE >= 1, and no spread at all.
    assert result.final.nmse >= 1.0 - 1e-6
    assert result.final.spread < 1e-3


def test_unwritable_out_dir_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="not writable"):
        train(_config(), _dataset(), None, out_dir=blocker / "run", progress=False)


def test_tensorboard_events_are_written(tmp_path: Path) -> None:
    train(_config("steps=2", "log_every=1", "tensorboard=true"), _dataset(), None, out_dir=tmp_path, progress=False)
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_lr_schedule_warmup_then_cosine() -> None:
    factors = [lr_factor(s, warmup_steps=4, total_steps=20, min_lr_ratio=0.1) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[-1] == pytest.approx(0.1)


class _StateDataset(torch.utils.data.Dataset):
    """`_dataset` with a low-dim observation beside the frames, as WindowDataset yields it with state_keys."""

    def __init__(self, m: int = 24) -> None:
        self.frames, self.targets = _dataset(m).tensors
        self.state = torch.randn(m, 2, 5, generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        return {"observation.image": self.frames[i], "observation.state": self.state[i]}, self.targets[i]


def test_low_dim_observations_train_checkpoint_and_resume(tmp_path: Path, state_taking_cnn) -> None:
    overrides = ["policy.backbone=cnn", "policy.view.token_mode=pixel", "policy.cnn.channels=[4]",
                 "policy.cnn.kernel_sizes=[3]", "policy.cnn.strides=[1]", "eval_every=2", "checkpoint_every=2"]
    data = _StateDataset()
    full = train(_config("steps=4", *overrides), data, data, out_dir=tmp_path / "full", progress=False)
    assert full.policy.state_shape == (2, 5) and full.policy.state_norm.is_fitted
    train(_config("steps=4", *overrides), data, data, out_dir=tmp_path / "cut", progress=False, stop_at_step=2)
    resumed = train(_config("steps=4", *overrides), data, data, out_dir=tmp_path / "cut", progress=False, resume=True)
    for name, tensor in full.policy.state_dict().items():
        assert torch.equal(tensor, resumed.policy.state_dict()[name]), name
    policy, _ = load_policy(tmp_path / "full")
    batch = {"observation.image": data.frames[:3], "observation.state": data.state[:3]}
    assert policy.state_shape == (2, 5)
    assert torch.equal(policy.predict(batch), full.policy.predict(batch))


def test_weight_decay_skips_vectors_and_the_flop_count_leaves_the_run_unchanged() -> None:
    """nanoGPT's split: matrices decay, biases and norm gains do not. The step's FLOP count (one extra forward and
    backward before the first step) changes nothing: with dropout on, a run equals the run it would be without."""
    from rvperceiver.train.loop import make_optimizer, parameter_groups

    config = _config("optim.name=adamw", "optim.weight_decay=0.1")
    policy = build_policy(config.policy, (2, 8, 8, 3), (4, 2))
    decay, no_decay = parameter_groups(policy, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["params"] and all(p.ndim >= 2 for p in decay["params"])
    assert no_decay["params"] and all(p.ndim < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(policy.parameters()))
    assert len(make_optimizer(policy, config).param_groups) == 2
    assert len(parameter_groups(policy, 0.0)) == 1  # checkpoints written before the split keep loading

    from rvperceiver.train import loop

    dropout = _config("steps=4", "eval_every=4", "policy.perceiver.dropout=0.3")
    counted = train(dropout, _dataset(), None, progress=False)
    original = loop.count_step_flops
    try:
        loop.count_step_flops = lambda model, loss_of: 1.0  # the run as it would be without the count
        plain = train(dropout, _dataset(), None, progress=False)
    finally:
        loop.count_step_flops = original
    assert counted.train_losses == plain.train_losses
    for a, b in zip(counted.policy.state_dict().values(), plain.policy.state_dict().values()):
        assert torch.equal(a, b)
