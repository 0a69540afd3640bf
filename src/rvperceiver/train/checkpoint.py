"""Checkpoints: safetensors + JSON only (no pickle), written atomically, loaded with clear errors.

Layout of a checkpoint directory (``<out_dir>/checkpoint/``)::

    model.safetensors           the policy's state dict (weights AND the fitted view / target statistics)
    training_state.safetensors  optimizer tensors + RNG states; a JSON index of everything that is not a tensor
                                (optimizer hyper-parameters, scheduler state, step, numpy/python RNG scalars)
                                lives in the file's metadata under "index"
    config.json                 TrainConfig, PolicyConfig, input/target shapes, library version, model type and
                                the SHA-256 of both safetensors files (so a flipped bit is caught, not trusted)

Atomicity: everything is written into ``checkpoint.tmp/`` and fsynced; only then is the old directory renamed to
``checkpoint.old/``, the new one renamed into place and the old one deleted. At every instant a complete
checkpoint exists under ``checkpoint/`` or, for the moment between the two renames, under ``checkpoint.old/``,
which :func:`resolve_checkpoint` falls back to. A crash mid-write leaves only a ``checkpoint.tmp/`` that loading
ignores and the next save replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

import rvperceiver
from rvperceiver.errors import CheckpointError, ConfigError, InputError, NonFiniteError
from rvperceiver.train.config import TrainConfig, from_dict, to_dict

FORMAT_NAME = "rvperceiver-checkpoint"
FORMAT_VERSION = 1
MODEL_TYPE = "rvperceiver.Policy"
MODEL_FILE = "model.safetensors"
STATE_FILE = "training_state.safetensors"
CONFIG_FILE = "config.json"


# ----------------------------------------------------------------------------------------------------------------
# RNG state
# ----------------------------------------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """The state of every random generator a training step may touch (torch CPU/CUDA, numpy, python)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored only where CUDA is initialised)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_to_flat(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    kind, keys, pos, has_gauss, cached = state["numpy"]
    version, internal, gauss_next = state["python"]
    tensors = {
        "rng.torch": state["torch"].clone(),
        "rng.numpy.keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "rng.python.state": torch.tensor(internal, dtype=torch.int64),
    }
    for i, cuda_state in enumerate(state.get("cuda", [])):
        tensors[f"rng.cuda.{i}"] = cuda_state.cpu().clone()
    index = {
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "gauss_next": gauss_next},
        "cuda_devices": len(state.get("cuda", [])),
    }
    return tensors, index


def _rng_from_flat(tensors: dict[str, torch.Tensor], index: dict[str, Any]) -> dict[str, Any]:
    npi, pyi = index["numpy"], index["python"]
    state: dict[str, Any] = {
        "torch": tensors["rng.torch"],
        "numpy": (
            npi["kind"],
            tensors["rng.numpy.keys"].numpy().astype(np.uint32),
            npi["pos"],
            npi["has_gauss"],
            npi["cached_gaussian"],
        ),
        "python": (pyi["version"], tuple(int(v) for v in tensors["rng.python.state"].tolist()), pyi["gauss_next"]),
    }
    if index.get("cuda_devices", 0):
        state["cuda"] = [tensors[f"rng.cuda.{i}"] for i in range(index["cuda_devices"])]
    return state


# ----------------------------------------------------------------------------------------------------------------
# Optimizer / scheduler state <-> (tensors, JSON)
# ----------------------------------------------------------------------------------------------------------------


def _json_ready(value: Any, what: str) -> Any:
    """Check that ``value`` survives a JSON round trip (tuples become lists); fail loudly otherwise."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"cannot store {what} as JSON: {error}") from None


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{param_id}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    index = {
        "param_ids": [int(k) for k in state_dict["state"].keys()],
        "scalars": _json_ready(scalars, "optimizer state"),
        "param_groups": _json_ready(state_dict["param_groups"], "optimizer param_groups"),
    }
    return tensors, index


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], index: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for param_id in index["param_ids"]:
        prefix = f"optim.{param_id}."
        entry = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        entry.update(index["scalars"].get(str(param_id), {}))
        state[param_id] = entry
    groups = []
    for group in index["param_groups"]:
        # JSON turned tuples (betas) into lists; give them back as tuples, as the optimizer created them.
        groups.append({k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in group.items()})
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new directory entry durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> str:
    """Write and fsync a file; return its SHA-256."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(data).hexdigest()


def _check_finite(policy: nn.Module) -> None:
    for name, tensor in policy.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError(f"refusing to write a checkpoint: {name} contains NaN or Inf")


def _policy_shapes(policy: nn.Module) -> tuple[list[int], list[int]]:
    try:
        return list(policy.input_shape), list(policy.target_shape)
    except AttributeError:
        raise CheckpointError(
            f"{type(policy).__name__} has no input_shape/target_shape attributes; save_checkpoint needs a Policy"
        ) from None


def _state_shape(policy: nn.Module) -> list[int] | None:
    shape = getattr(policy, "state_shape", None)
    return list(shape) if shape is not None else None


def save_checkpoint(
    directory: str | Path,
    policy: nn.Module,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    step: int = 0,
    rng: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``policy`` (+ optionally the optimizer, scheduler, RNG state and step) atomically to ``directory``.

    ``rng`` defaults to the current generator states; ``extra`` is any JSON-able record (e.g. the last metrics).
    Raises ``NonFiniteError`` (and writes nothing) if a weight or statistic is NaN/Inf, so the last good
    checkpoint is never replaced by a broken one. Returns ``directory``.
    """
    directory = Path(directory)
    _check_finite(policy)
    input_shape, target_shape = _policy_shapes(policy)

    model_tensors = {name: t.detach().cpu().contiguous().clone() for name, t in policy.state_dict().items()}
    state_tensors: dict[str, torch.Tensor] = {}
    index: dict[str, Any] = {"step": int(step)}
    rng_tensors, index["rng"] = _rng_to_flat(rng if rng is not None else capture_rng_state())
    state_tensors.update(rng_tensors)
    if optimizer is not None:
        optim_tensors, index["optimizer"] = _optimizer_to_flat(optimizer)
        state_tensors.update(optim_tensors)
    if scheduler is not None:
        index["scheduler"] = _json_ready(scheduler.state_dict(), "scheduler state")
    model_bytes = save_safetensors_bytes(model_tensors, metadata={"format": FORMAT_NAME})
    state_bytes = save_safetensors_bytes(state_tensors, metadata={"format": FORMAT_NAME, "index": json.dumps(index)})

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    if tmp.exists():  # left over from a crash during an earlier save
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        digests = {MODEL_FILE: _write_bytes(tmp / MODEL_FILE, model_bytes)}
        digests[STATE_FILE] = _write_bytes(tmp / STATE_FILE, state_bytes)
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model_type": MODEL_TYPE,
            "library_version": rvperceiver.__version__,
            "torch_version": torch.__version__,
            "step": int(step),
            "input_shape": input_shape,
            "target_shape": target_shape,
            "state_shape": _state_shape(policy),
            "policy_config": to_dict(policy.config),
            "train_config": to_dict(config),
            "files": digests,
            "extra": _json_ready(extra or {}, "extra"),
        }
        # config.json goes last: it carries the digests, so a directory without it is never complete.
        _write_bytes(tmp / CONFIG_FILE, json.dumps(meta, indent=2).encode("utf-8"))
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        if old.exists():  # a leftover from an earlier save; ``directory`` is the complete checkpoint
            shutil.rmtree(old)
        os.rename(directory, old)
    # else: an earlier save was interrupted between its two renames and ``old`` is the only complete checkpoint;
    # it must survive until the new one is in place, or a crash right here would leave none at all.
    os.rename(tmp, directory)
    _fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory for ``path``: the directory itself, or ``<path>/checkpoint`` for a run directory.

    Falls back to ``checkpoint.old`` if a crash happened between the two renames of a save.
    """
    path = Path(path)
    for candidate in (path, path / "checkpoint"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
        old = candidate.with_name(candidate.name + ".old")
        if not candidate.exists() and (old / CONFIG_FILE).is_file():
            warnings.warn(f"{candidate} is missing; using {old} (a save was interrupted)", stacklevel=2)
            return old
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the path does not exist")
    raise CheckpointError(
        f"no checkpoint at {path}: expected {CONFIG_FILE}, {MODEL_FILE} and {STATE_FILE} there or in {path / 'checkpoint'}"
    )


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """Parse and check ``config.json`` of a checkpoint (format, version, model type)."""
    directory = resolve_checkpoint(path)
    config_path = directory / CONFIG_FILE
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path} is not readable JSON: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{config_path} is not an rvperceiver checkpoint (format {meta.get('format')!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format version {meta.get('format_version')}; this library reads up to {FORMAT_VERSION}"
        )
    if meta.get("model_type") != MODEL_TYPE:
        raise CheckpointError(
            f"{config_path} holds a model of type {meta.get('model_type')!r}; load_policy loads {MODEL_TYPE!r}"
        )
    for key in ("input_shape", "target_shape", "policy_config", "train_config", "files"):
        if key not in meta:
            raise CheckpointError(f"{config_path} lacks the key {key!r}")
    meta["_directory"] = str(directory)
    return meta


def _read_safetensors(directory: Path, name: str, meta: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing") from None
    expected = meta["files"].get(name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 does not match the one recorded in {CONFIG_FILE}")
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} is not a valid safetensors file: {error}") from None
    return tensors, _safetensors_metadata(data, path)


def _safetensors_metadata(data: bytes, path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors buffer (8-byte little-endian header length, then a JSON header)."""
    try:
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        return dict(header.get("__metadata__", {}))
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} has an unreadable header: {error}") from None


def load_model_weights(path: str | Path, policy: nn.Module, meta: dict[str, Any] | None = None) -> None:
    """Load a checkpoint's ``model.safetensors`` into ``policy`` (weights and statistics), strictly.

    Missing, unexpected or wrongly shaped entries raise ``CheckpointError`` listing (the first few of) them.
    """
    meta = meta if meta is not None else read_checkpoint_meta(path)
    directory = Path(meta["_directory"])
    tensors, _ = _read_safetensors(directory, MODEL_FILE, meta)
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = [
        f"{k} (file {tuple(tensors[k].shape)}, model {tuple(expected[k].shape)})"
        for k in sorted(set(expected) & set(tensors))
        if tensors[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            parts.append(f"wrong shape {wrong_shape[:5]}")
        raise CheckpointError(
            f"{directory / MODEL_FILE} does not match the model described by {CONFIG_FILE}: " + "; ".join(parts)
        )
    try:
        policy.load_state_dict(tensors, strict=True)
    except (RuntimeError, InputError, ValueError) as error:
        raise CheckpointError(f"{directory / MODEL_FILE} cannot be loaded into the model: {error}") from None


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the saved policy (with its fitted statistics) and its TrainConfig from a checkpoint.

    ``path`` is a checkpoint directory or a run directory holding ``checkpoint/``. The policy is returned in eval
    mode on ``device``. Missing files, corrupt files, a checkpoint of another model type or weights that do not
    match the saved config raise ``CheckpointError``.
    """
    from rvperceiver.model.policy import build_policy  # late import: the model package depends on nothing here

    meta = read_checkpoint_meta(path)
    directory = Path(meta["_directory"])
    try:
        config = from_dict(meta["train_config"])
        policy_config = from_dict({"policy": meta["policy_config"]}).policy
    except ConfigError as error:
        raise CheckpointError(f"{directory / CONFIG_FILE}: the stored config is invalid: {error}") from None
    input_shape = tuple(int(v) for v in meta["input_shape"])
    target_shape = tuple(int(v) for v in meta["target_shape"])
    state_shape = tuple(int(v) for v in meta["state_shape"]) if meta.get("state_shape") else None
    try:
        policy = build_policy(policy_config, input_shape, target_shape, state_shape)
    except (InputError, ConfigError, ValueError) as error:
        raise CheckpointError(f"{directory / CONFIG_FILE}: cannot build the saved policy: {error}") from None

    load_model_weights(directory, policy, meta)
    policy.to(device).eval()
    return policy, config


@dataclass
class TrainingState:
    """What :func:`load_training_state` restores besides the optimizer and scheduler (loaded in place)."""

    step: int
    rng: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def load_training_state(
    path: str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> TrainingState:
    """Load optimizer and scheduler state in place and return the step, RNG state and extra record.

    The RNG state is returned, not applied: call :func:`restore_rng_state` at the point where the interrupted run
    had it (the training loop does so right before its next step).
    """
    meta = read_checkpoint_meta(path)
    directory = Path(meta["_directory"])
    tensors, metadata = _read_safetensors(directory, STATE_FILE, meta)
    try:
        index = json.loads(metadata["index"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{directory / STATE_FILE} lacks its JSON index") from None
    if optimizer is not None:
        if "optimizer" not in index:
            raise CheckpointError(f"{directory / STATE_FILE} holds no optimizer state")
        try:
            optimizer.load_state_dict(_optimizer_from_flat(tensors, index["optimizer"]))
        except (ValueError, KeyError, RuntimeError) as error:
            raise CheckpointError(f"{directory / STATE_FILE}: optimizer state does not fit this optimizer: {error}") from None
    if scheduler is not None:
        if "scheduler" not in index:
            raise CheckpointError(f"{directory / STATE_FILE} holds no scheduler state")
        scheduler.load_state_dict(index["scheduler"])
    try:
        rng = _rng_from_flat(tensors, index["rng"])
    except KeyError as error:
        raise CheckpointError(f"{directory / STATE_FILE}: RNG state incomplete (missing {error})") from None
    return TrainingState(step=int(index["step"]), rng=rng, extra=dict(meta.get("extra", {})))
