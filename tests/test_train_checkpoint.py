from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import rvperceiver
from rvperceiver.errors import CheckpointError, ConfigError, NonFiniteError
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
    directory = save_checkpoint(tmp_path / "checkpoints", policy, config, step=7)
    assert directory == tmp_path / "checkpoints" / "000007"
    assert sorted(p.name for p in (directory / "pretrained_model").iterdir()) == [
        "config.json", "model.safetensors", "train_config.json"]
    assert sorted(p.name for p in (directory / "training_state").iterdir()) == [
        "training_state.safetensors", "training_step.json"]
    loaded, loaded_config = load_policy(tmp_path)  # a run directory works as well as the checkpoint itself
    assert loaded_config == config
    assert torch.equal(loaded.predict(x), policy.predict(x))
    assert loaded.view.is_fitted and loaded.target_norm.is_fitted
    meta = json.loads((directory / "pretrained_model" / "config.json").read_text())
    assert meta["type"] == ckpt.MODEL_TYPE
    assert meta["library_version"] == rvperceiver.__version__
    assert meta["input_shape"] == [2, 8, 8, 3] and meta["target_shape"] == [4, 3] and meta["state_shape"] is None
    assert meta["n_obs_steps"] == 2 and meta["chunk_size"] == 4
    assert meta["input_features"] == {"observation.image": {"type": "VISUAL", "shape": [8, 8, 3], "dtype": "uint8"}}
    assert json.loads((directory / "training_state" / "training_step.json").read_text())["step"] == 7
    assert (tmp_path / "checkpoints" / "last").resolve() == directory.resolve()


def test_optimizer_scheduler_and_rng_round_trip(tmp_path: Path) -> None:
    policy, config, x, y = _fitted_policy()
    optimizer = make_optimizer(policy, config)
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
    optimizer2 = make_optimizer(fresh, config)
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


def _newest_step(run: Path) -> int:
    return int(ckpt.read_checkpoint_meta(run)["step"])


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    save_checkpoint(tmp_path / "checkpoints", policy, config, step=1)
    before = policy.predict(x)

    calls = {"n": 0}
    real_write = ckpt._write_bytes

    def failing_write(path: Path, data: bytes) -> str:
        calls["n"] += 1
        if calls["n"] == 4:  # the pretrained model written, crash while writing the training state
            raise OSError("disk yanked")
        return real_write(path, data)

    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    monkeypatch.setattr(ckpt, "_write_bytes", failing_write)
    with pytest.raises(OSError, match="disk yanked"):
        save_checkpoint(tmp_path / "checkpoints", policy, config, step=2)
    monkeypatch.undo()

    loaded, _ = load_policy(tmp_path)
    assert torch.equal(loaded.predict(x), before)
    assert _newest_step(tmp_path) == 1 and not (tmp_path / "checkpoints" / "000002.tmp").exists()


def test_leftover_temp_and_deleting_dirs_from_a_crash_are_harmless(tmp_path: Path) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    save_checkpoint(tmp_path / "checkpoints", policy, config, step=1)
    for junk_name in ("000002.tmp", "000000.deleting"):
        junk = tmp_path / "checkpoints" / junk_name
        (junk / "pretrained_model").mkdir(parents=True)
        (junk / "pretrained_model" / "model.safetensors").write_bytes(b"half a file")
    loaded, _ = load_policy(tmp_path)
    assert torch.equal(loaded.predict(x), policy.predict(x))
    save_checkpoint(tmp_path / "checkpoints", policy, config, step=2)  # the next save removes the junk
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["000001", "000002", "last"]
    assert _newest_step(tmp_path) == 2


def test_the_newest_complete_step_wins_whatever_last_says(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    save_checkpoint(tmp_path / "checkpoints", policy, config, step=1)
    save_checkpoint(tmp_path / "checkpoints", policy, config, step=2)
    last = tmp_path / "checkpoints" / "last"
    last.unlink()
    last.symlink_to("000001")  # a kill between the step's rename and the pointer's
    assert _newest_step(tmp_path) == 2 and _newest_step(tmp_path / "checkpoints") == 2
    assert _newest_step(last) == 1  # the pointer itself still names its step
    last.unlink()
    last.write_text("000001\n")  # where symlinks are not allowed the pointer is a one-line file
    assert _newest_step(last) == 1


def test_keep_last_and_best_by_validation(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    root = tmp_path / "checkpoints"
    losses = {1: 0.9, 2: 0.3, 3: None, 4: 0.5, 5: 0.7, 6: 0.8}
    for step, loss in losses.items():
        save_checkpoint(root, policy, config, step=step, valid_loss=loss, keep_last=2)
    assert sorted(p.name for p in root.iterdir()) == ["000002", "000005", "000006", "best", "last"]
    assert (root / "best").resolve().name == "000002" and (root / "last").resolve().name == "000006"
    assert ckpt.read_checkpoint_meta(root / "best")["valid_loss"] == 0.3
    save_checkpoint(root, policy, config, step=7, valid_loss=0.1, keep_last=2)
    assert sorted(p.name for p in root.iterdir()) == ["000006", "000007", "best", "last"]
    assert (root / "best").resolve().name == "000007"
    save_checkpoint(root, policy, config, step=8, keep_last=1, keep_best=False)
    assert sorted(p.name for p in root.iterdir()) == ["000008", "last"]
    with pytest.raises(ConfigError, match="keep_last must be a positive integer"):
        save_checkpoint(root, policy, config, step=9, keep_last=0)
    with pytest.raises(ConfigError, match="keep_last must be a positive integer"):
        load_config(CONFIGS / "tiny.yaml", ["keep_last=0"])


def test_pretrained_directory_round_trip_and_its_bad_input(tmp_path: Path) -> None:
    from rvperceiver.model.policy import Policy

    policy, config, x, _ = _fitted_policy()
    policy.eval()
    directory = policy.save_pretrained(tmp_path / "pretrained")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    loaded = Policy.from_pretrained(directory)
    assert not loaded.training and torch.equal(loaded.predict(x), policy.predict(x))
    policy.save_pretrained(directory, train_config=config)  # replaces it whole
    assert (directory / "train_config.json").exists() and load_policy(directory)[1] == config
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints", policy, config, step=3)
    for where in (run, run / "checkpoints" / "last", run / "checkpoints" / "000003" / "pretrained_model"):
        assert torch.equal(Policy.from_pretrained(where).predict(x), policy.predict(x))

    with pytest.raises(CheckpointError, match="exists and is not a pretrained rvperceiver policy"):
        policy.save_pretrained(tmp_path)  # never moves an unrelated directory aside
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"bare/config.json is missing: a pretrained directory needs"):
        Policy.from_pretrained(bare)
    other = tmp_path / "other"
    shutil.copytree(directory, other)
    meta = json.loads((other / "config.json").read_text())
    meta["type"] = "act"
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="holds a model of type 'act'; Policy.from_pretrained loads 'rvperceiver.Policy'"):
        Policy.from_pretrained(other)
    with pytest.raises(CheckpointError, match="holds no training state|pretrained policy without training state"):
        load_training_state(directory)


LEGACY = Path(__file__).resolve().parent / "data" / "legacy_v1_run"


def _legacy_data():
    """The training data of ``tests/data/legacy_v1_run`` (see tests/data/README.md)."""
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 2, 8, 8, 3), generator=g, dtype=torch.uint8)
    return TensorDataset(x, torch.rand(16, 4, 3, generator=g))


def test_a_version_1_save_interrupted_between_its_renames_falls_back_to_old(tmp_path: Path) -> None:
    shutil.copytree(LEGACY / "checkpoint", tmp_path / "checkpoint.old")
    with pytest.warns(UserWarning, match="interrupted"):
        assert _newest_step(tmp_path) == 2


def test_a_version_1_checkpoint_loads_predicts_the_same_and_resumes_exactly(tmp_path: Path) -> None:
    from rvperceiver.model.policy import Policy
    from rvperceiver.train.loop import train

    probe = np.load(LEGACY / "probe.npz", allow_pickle=False)
    for loaded in (load_policy(LEGACY)[0], load_policy(LEGACY / "checkpoint")[0], Policy.from_pretrained(LEGACY)):
        prediction = loaded.predict(torch.from_numpy(probe["frames"])).detach().numpy()
        # The model code has changed since (exact up to float rounding), so not bit for bit.
        np.testing.assert_allclose(prediction, probe["prediction"], rtol=1e-5, atol=1e-6)
    old = Path(shutil.copytree(LEGACY, tmp_path / "old"))
    config = load_config(CONFIGS / "tiny.yaml", ["steps=4", "eval_every=2", "checkpoint_every=2"])
    # The view's std floor default has changed since (1e-6 then; the data's own units now): the refusal names it.
    with pytest.raises(CheckpointError, match=r"policy\.view\.std_floor: checkpoint 1e-06, this run None"):
        train(config, _legacy_data(), None, out_dir=old, resume=True, progress=False)
    config = load_config(CONFIGS / "tiny.yaml", ["steps=4", "eval_every=2", "checkpoint_every=2",
                                                 "policy.view.std_floor=1e-6"])
    resumed = train(config, _legacy_data(), None, out_dir=old, resume=True, progress=False)
    assert resumed.step == 4 and (old / "checkpoints" / "000004").is_dir()
    # The same state re-saved in the current layout resumes to the same bits: nothing of it was lost in reading.
    policy, _ = load_policy(LEGACY)
    policy.train()
    optimizer = make_optimizer(policy, config)
    scheduler = make_scheduler(optimizer, config)
    state = load_training_state(LEGACY, optimizer, scheduler)
    save_checkpoint(tmp_path / "new" / "checkpoints", policy, config, optimizer, scheduler, step=state.step, rng=state.rng)
    again = train(config, _legacy_data(), None, out_dir=tmp_path / "new", resume=True, progress=False)
    for name, tensor in again.policy.state_dict().items():
        assert torch.equal(tensor, resumed.policy.state_dict()[name]), name


def test_non_finite_weights_are_never_written(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    save_checkpoint(tmp_path / "checkpoints", policy, config, step=1)
    with torch.no_grad():
        next(policy.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        save_checkpoint(tmp_path / "checkpoints", policy, config, step=2)
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        policy.save_pretrained(tmp_path / "pretrained")
    assert _newest_step(tmp_path) == 1 and not (tmp_path / "pretrained").exists()


def test_missing_checkpoint_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_policy(tmp_path)
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoints", policy, config)
    (directory / "pretrained_model" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_policy(directory)


def test_corrupt_files_are_detected(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoints", policy, config) / "pretrained_model"
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
    directory = save_checkpoint(tmp_path / "checkpoints", policy, config) / "pretrained_model"
    meta = json.loads((directory / "config.json").read_text())
    meta["type"] = "somebody.else.Model"
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="somebody.else.Model"):
        load_policy(directory)


def test_weights_not_matching_the_config_are_rejected(tmp_path: Path) -> None:
    policy, config, _, _ = _fitted_policy()
    directory = save_checkpoint(tmp_path / "checkpoints", policy, config) / "pretrained_model"
    meta = json.loads((directory / "config.json").read_text())
    meta["policy"]["perceiver"]["num_latents"] = 12
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_policy(directory)
    meta["policy"]["perceiver"]["num_latents"] = 8
    meta["policy"]["perceiver"]["self_layers_per_block"] = 2
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing"):
        load_policy(directory)


def test_checkpoint_of_a_run_dir_copy_still_loads(tmp_path: Path) -> None:
    policy, config, x, _ = _fitted_policy()
    policy.eval()
    save_checkpoint(tmp_path / "run" / "checkpoints", policy, config)
    shutil.copytree(tmp_path / "run", tmp_path / "copy", symlinks=True)
    loaded, _ = load_policy(tmp_path / "copy")
    assert torch.equal(loaded.predict(x), policy.predict(x))
