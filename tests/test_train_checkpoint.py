from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import rvperceiver
from rvperceiver.errors import CheckpointError, NonFiniteError
from rvperceiver.model.policy import build_policy
from rvperceiver.train import checkpoint as ckpt
from rvperceiver.train.checkpoint import (
    capture_rng_state,
    load_policy,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
)
from rvperceiver.train.config import load_config
from rvperceiver.train.loop import make_optimizer, make_scheduler

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _fitted_policy(seed: int = 0):
    config = load_config(CONFIGS / "tiny.yaml")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (16, 2, 8, 8, 3), generator=g, dtype=torch.uint8)
    y = torch.rand(16, 4, 3, generator=g)
    policy = build_policy(config.policy, (2, 8, 8, 3), (4, 3))
    policy.fit_statistics([x[:8], x[8:]], y)
    return policy, config, x, y


def _one_step(policy, optimizer, scheduler, x, y) -> None:
    loss = torch.nn.functional.mse_loss(policy(x), policy.target_norm.normalize(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def test_save_load_predict_is_bit_identical(tmp_path: Path) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    directory = save_checkpoint(tmp_path / "checkpoint", policy, config, step=7)
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors", "training_state.safetensors"]
    loaded, loaded_config = load_policy(tmp_path)  # a run directory works as well as the checkpoint itself
    assert loaded_config == config
    assert torch.equal(loaded.predict(x), policy.predict(x))
    assert loaded.view.is_fitted and loaded.target_norm.is_fitted
    meta = json.loads((directory / "config.json").read_text())
    assert meta["model_type"] == ckpt.MODEL_TYPE
    assert meta["library_version"] == rvperceiver.__version__
    assert meta["input_shape"] == [2, 8, 8, 3] and meta["target_shape"] == [4, 3]
    assert meta["step"] == 7


def test_no_pickle_in_the_files(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoint", policy, config)
    for name in ("model.safetensors", "training_state.safetensors"):
        header_len = int.from_bytes((directory / name).read_bytes()[:8], "little")
        json.loads((directory / name).read_bytes()[8 : 8 + header_len])  # a safetensors header is plain JSON


def test_optimizer_scheduler_and_rng_round_trip(tmp_path: Path) -> None:
    policy, config, x, y = _fitted_policy()
    optimizer = make_optimizer(policy.parameters(), config)
    scheduler = make_scheduler(optimizer, config)
    for _ in range(3):
        _one_step(policy, optimizer, scheduler, x, y)
    torch.manual_seed(123)
    np.random.seed(5)
    rng = capture_rng_state()
    save_checkpoint(tmp_path / "c", policy, config, optimizer, scheduler, step=3, rng=rng)
    expected_torch, expected_numpy = torch.rand(4), np.random.rand(3)

    fresh, _ = load_policy(tmp_path / "c")
    fresh.train()
    optimizer2 = make_optimizer(fresh.parameters(), config)
    scheduler2 = make_scheduler(optimizer2, config)
    state = load_training_state(tmp_path / "c", optimizer2, scheduler2)
    assert state.step == 3
    assert scheduler2.state_dict() == scheduler.state_dict()
    a, b = optimizer.state_dict(), optimizer2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for key, value in a["state"][pid].items():
            assert torch.equal(value, b["state"][pid][key])
    restore_rng_state(state.rng)
    assert torch.equal(torch.rand(4), expected_torch)
    assert np.array_equal(np.random.rand(3), expected_numpy)
    # The next step from the restored state equals the next step of the original.
    _one_step(policy, optimizer, scheduler, x, y)
    _one_step(fresh, optimizer2, scheduler2, x, y)
    for (name, p), q in zip(policy.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), name


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    save_checkpoint(tmp_path / "checkpoint", policy, config, step=1)
    before = policy.predict(x)

    calls = {"n": 0}
    real_write = ckpt._write_bytes

    def failing_write(path: Path, data: bytes) -> str:
        calls["n"] += 1
        if calls["n"] == 2:  # model.safetensors written, crash while writing the training state
            raise OSError("disk yanked")
        return real_write(path, data)

    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    monkeypatch.setattr(ckpt, "_write_bytes", failing_write)
    with pytest.raises(OSError, match="disk yanked"):
        save_checkpoint(tmp_path / "checkpoint", policy, config, step=2)
    monkeypatch.undo()

    loaded, _ = load_policy(tmp_path / "checkpoint")
    assert torch.equal(loaded.predict(x), before)
    assert json.loads((tmp_path / "checkpoint" / "config.json").read_text())["step"] == 1


def test_leftover_temp_dir_from_a_crash_is_harmless(tmp_path: Path) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    save_checkpoint(tmp_path / "checkpoint", policy, config, step=1)
    junk = tmp_path / "checkpoint.tmp"
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"half a file")
    loaded, _ = load_policy(tmp_path)
    assert torch.equal(loaded.predict(x), policy.predict(x))
    save_checkpoint(tmp_path / "checkpoint", policy, config, step=2)  # the next save replaces the junk
    assert not junk.exists()
    assert json.loads((tmp_path / "checkpoint" / "config.json").read_text())["step"] == 2


def test_crash_between_renames_falls_back_to_old(tmp_path: Path) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    save_checkpoint(tmp_path / "checkpoint", policy, config, step=1)
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    with pytest.warns(UserWarning, match="interrupted"):
        loaded, _ = load_policy(tmp_path)
    assert torch.equal(loaded.predict(x), policy.predict(x))


def test_non_finite_weights_are_never_written(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    save_checkpoint(tmp_path / "checkpoint", policy, config, step=1)
    with torch.no_grad():
        next(policy.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        save_checkpoint(tmp_path / "checkpoint", policy, config, step=2)
    assert json.loads((tmp_path / "checkpoint" / "config.json").read_text())["step"] == 1


def test_missing_checkpoint_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_policy(tmp_path)
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoint", policy, config)
    (directory / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_policy(directory)


def test_corrupt_files_are_detected(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoint", policy, config)
    model_file = directory / "model.safetensors"
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a weight still parses as safetensors: the digest catches it
    model_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(directory)
    model_file.write_bytes(b"\x00" * 5)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(directory)
    # Without a recorded digest the safetensors parser is the last line of defence.
    meta = json.loads((directory / "config.json").read_text())
    meta["files"].pop("model.safetensors")
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_policy(directory)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_policy(directory)


def test_other_model_type_is_rejected(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoint", policy, config)
    meta = json.loads((directory / "config.json").read_text())
    meta["model_type"] = "somebody.else.Model"
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="somebody.else.Model"):
        load_policy(directory)


def test_weights_not_matching_the_config_are_rejected(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoint", policy, config)
    meta = json.loads((directory / "config.json").read_text())
    meta["policy_config"]["perceiver"]["num_latents"] = 12
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_policy(directory)
    meta["policy_config"]["perceiver"]["num_latents"] = 8
    meta["policy_config"]["perceiver"]["self_layers_per_block"] = 2
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing"):
        load_policy(directory)


def test_checkpoint_of_a_run_dir_copy_still_loads(tmp_path: Path) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    save_checkpoint(tmp_path / "run" / "checkpoint", policy, config)
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    loaded, _ = load_policy(tmp_path / "copy")
    assert torch.equal(loaded.predict(x), policy.predict(x))
