"""Checkpoints and pretrained policies: safetensors + JSON only (no pickle), written atomically, loaded with clear errors.

A **pretrained policy directory** is LeRobot's ``pretrained_model/`` layout::

    config.json          model type, format version, input/target/low-dim shapes, the PolicyConfig, LeRobot-style
                         input/output features, and the SHA-256 of model.safetensors (a flipped bit is caught)
    model.safetensors    the policy's state dict (weights AND the fitted view / state / target statistics)
    train_config.json    the TrainConfig that trained it (absent for a policy saved outside training)

A training run keeps **step checkpoints** beside it, as LeRobot does::

    <out_dir>/checkpoints/000500/pretrained_model/   the directory above
                                /training_state/     training_state.safetensors (optimizer tensors + RNG states; a
                                                     JSON index of everything else in its metadata) and
                                                     training_step.json (step, its SHA-256, the validation loss)
    <out_dir>/checkpoints/last -> 000500            the newest step;  best -> the step of lowest validation loss

Atomicity: a step is written into ``checkpoints/<step>.tmp/`` and fsynced, then renamed to ``<step>/``, so a
directory with a bare step number is always complete; only then are the ``last``/``best`` pointers replaced (by
renaming a new link over the old) and steps beyond ``keep_last`` removed (renamed to ``<step>.deleting`` first, so
a kill mid-delete never leaves a half step). Resuming takes the newest complete step, whatever the pointers say,
so a kill between any two of these operations loses at most the step being written. The layout of version 1 (one
``checkpoint/`` directory overwritten at every save) is still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
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
from rvperceiver.observation import IMAGE, STATE
from rvperceiver.train.config import TrainConfig, from_dict, to_dict

FORMAT_NAME = "rvperceiver-checkpoint"  # version 1: one checkpoint/ directory per run
FORMAT_VERSION = 1
PRETRAINED_FORMAT = "rvperceiver-pretrained"
PRETRAINED_VERSION = 2
STATE_FORMAT = "rvperceiver-training-state"
MODEL_TYPE = "rvperceiver.Policy"
MODEL_FILE = "model.safetensors"
STATE_FILE = "training_state.safetensors"
CONFIG_FILE = "config.json"
TRAIN_CONFIG_FILE = "train_config.json"
STEP_FILE = "training_step.json"
PRETRAINED_DIR = "pretrained_model"
TRAINING_STATE_DIR = "training_state"
CHECKPOINTS_DIR = "checkpoints"
LAST_LINK = "last"
BEST_LINK = "best"
LEGACY_DIR = "checkpoint"  # the version-1 layout's directory
_STEP_NAME = re.compile(r"^\d+$")


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


def _step_name(step: int) -> str:
    return f"{int(step):06d}"


def _pretrained_config(policy: nn.Module) -> dict[str, Any]:
    """config.json of a pretrained directory: what builds the policy, plus LeRobot-style feature descriptions."""
    input_shape, target_shape = _policy_shapes(policy)
    state_shape = _state_shape(policy)
    record: dict[str, Any] = {
        "type": MODEL_TYPE,
        "format": PRETRAINED_FORMAT,
        "format_version": PRETRAINED_VERSION,
        "library_version": rvperceiver.__version__,
        "torch_version": torch.__version__,
        "input_shape": input_shape,
        "target_shape": target_shape,
        "state_shape": state_shape,
        "policy": to_dict(policy.config),
    }
    if len(input_shape) == 4:  # frame sequences: describe them as LeRobot's policy configs do
        features: dict[str, Any] = {IMAGE: {"type": "VISUAL", "shape": input_shape[1:], "dtype": "uint8"}}
        if state_shape is not None:
            features[STATE] = {"type": "STATE", "shape": state_shape[1:], "dtype": "float32"}
        record["n_obs_steps"] = input_shape[0]
        record["chunk_size"] = target_shape[0]
        record["input_features"] = features
        record["output_features"] = {"action": {"type": "ACTION", "shape": target_shape[1:], "dtype": "float32"}}
    return record


def _write_pretrained_files(directory: Path, policy: nn.Module, train_config: TrainConfig | None) -> None:
    """model.safetensors, then config.json carrying its digest, then train_config.json, into ``directory``."""
    _check_finite(policy)
    model_tensors = {name: t.detach().cpu().contiguous().clone() for name, t in policy.state_dict().items()}
    record = _pretrained_config(policy)
    model_bytes = save_safetensors_bytes(model_tensors, metadata={"format": PRETRAINED_FORMAT})
    record["files"] = {MODEL_FILE: _write_bytes(directory / MODEL_FILE, model_bytes)}
    _write_bytes(directory / CONFIG_FILE, json.dumps(record, indent=2).encode("utf-8"))
    if train_config is not None:
        _write_bytes(directory / TRAIN_CONFIG_FILE, json.dumps(to_dict(train_config), indent=2).encode("utf-8"))
    _fsync_dir(directory)


def save_pretrained(directory: str | Path, policy: nn.Module, train_config: TrainConfig | None = None) -> Path:
    """Write ``policy`` as a pretrained directory (config.json + model.safetensors [+ train_config.json]).

    Atomic: written into ``<directory>.tmp`` and swapped in, so an existing pretrained directory is replaced
    whole or not at all. A directory that exists and is not an rvperceiver pretrained policy is refused.
    """
    directory = Path(directory)
    if directory.exists() and not _is_pretrained_dir(directory):
        raise CheckpointError(
            f"{directory} exists and is not a pretrained rvperceiver policy directory; refusing to replace it"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_pretrained_files(tmp, policy, train_config)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        if old.exists():
            shutil.rmtree(old)
        os.rename(directory, old)
    os.rename(tmp, directory)
    _fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _is_pretrained_dir(directory: Path) -> bool:
    try:
        return json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")).get("format") == PRETRAINED_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _point(root: Path, link: str, target: str) -> None:
    """Make ``root/link`` name ``target`` (a relative symlink, or a one-line file where symlinks are not allowed),
    replaced by a rename, so a reader sees the old pointer or the new one."""
    tmp = root / f".{link}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(target, tmp)
    except OSError:
        _write_bytes(tmp, target.encode("utf-8"))
    os.rename(tmp, root / link)


def _step_dirs(root: Path) -> list[tuple[int, Path]]:
    """The complete step checkpoints under ``root`` (bare step-number directories), oldest first."""
    if not root.is_dir():
        return []
    found = [
        (int(p.name), p) for p in root.iterdir() if _STEP_NAME.match(p.name) and p.is_dir() and not p.is_symlink()
    ]
    return sorted(found)


def _recorded_valid_loss(step_dir: Path) -> float | None:
    try:
        value = json.loads((step_dir / TRAINING_STATE_DIR / STEP_FILE).read_text(encoding="utf-8")).get("valid_loss")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
    valid_loss: float | None = None,
    keep_last: int | None = None,
    keep_best: bool | None = None,
) -> Path:
    """Write step ``step`` under the checkpoints directory ``directory`` (``<out_dir>/checkpoints``); return it.

    The step holds the pretrained policy and the training state (optimizer, scheduler, RNG, step; ``rng``
    defaults to the current generator states; ``extra`` is any JSON-able record). Then ``last`` points at it,
    ``best`` at the step of lowest recorded ``valid_loss`` (when ``keep_best``), and all but the newest
    ``keep_last`` steps (and the best) are removed; both default to ``config``'s. Raises ``NonFiniteError`` (and
    writes nothing) if a weight or statistic is NaN/Inf, so a good checkpoint is never followed by a broken one.
    """
    root = Path(directory)
    keep_last = config.keep_last if keep_last is None else int(keep_last)
    keep_best = config.keep_best if keep_best is None else bool(keep_best)
    if keep_last < 1:
        raise ConfigError(f"keep_last must be a positive integer (how many step checkpoints to keep), got {keep_last}")
    _check_finite(policy)
    _policy_shapes(policy)

    state_tensors: dict[str, torch.Tensor] = {}
    index: dict[str, Any] = {"step": int(step)}
    rng_tensors, index["rng"] = _rng_to_flat(rng if rng is not None else capture_rng_state())
    state_tensors.update(rng_tensors)
    if optimizer is not None:
        optim_tensors, index["optimizer"] = _optimizer_to_flat(optimizer)
        state_tensors.update(optim_tensors)
    if scheduler is not None:
        index["scheduler"] = _json_ready(scheduler.state_dict(), "scheduler state")
    state_bytes = save_safetensors_bytes(state_tensors, metadata={"format": STATE_FORMAT, "index": json.dumps(index)})

    root.mkdir(parents=True, exist_ok=True)
    for leftover in list(root.iterdir()):  # a crash during an earlier save or removal left these behind
        if leftover.suffix in (".tmp", ".deleting") and leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
    name = _step_name(step)
    tmp, final = root / f"{name}.tmp", root / name
    tmp.mkdir()
    try:
        (tmp / PRETRAINED_DIR).mkdir()
        _write_pretrained_files(tmp / PRETRAINED_DIR, policy, config)
        (tmp / TRAINING_STATE_DIR).mkdir()
        record = {
            "format": STATE_FORMAT,
            "format_version": PRETRAINED_VERSION,
            "step": int(step),
            "valid_loss": float(valid_loss) if valid_loss is not None else None,
            "files": {STATE_FILE: _write_bytes(tmp / TRAINING_STATE_DIR / STATE_FILE, state_bytes)},
            "extra": _json_ready(extra or {}, "extra"),
        }
        # training_step.json goes last: it carries the state's digest, so a state without it is never complete.
        _write_bytes(tmp / TRAINING_STATE_DIR / STEP_FILE, json.dumps(record, indent=2).encode("utf-8"))
        _fsync_dir(tmp / TRAINING_STATE_DIR)
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # the same step saved again (a run restarted by hand): the new one replaces it
        os.rename(final, root / f"{name}.deleting")
    os.rename(tmp, final)
    _fsync_dir(root)
    _point(root, LAST_LINK, name)

    steps = _step_dirs(root)
    keep = {path for _, path in steps[-keep_last:]}
    if keep_best:
        scored = [(loss, number, path) for number, path in steps if (loss := _recorded_valid_loss(path)) is not None]
        if scored:
            best = min(scored)[2]  # ties: the earlier step
            _point(root, BEST_LINK, best.name)
            keep.add(best)
    elif (root / BEST_LINK).is_symlink() or (root / BEST_LINK).exists():
        (root / BEST_LINK).unlink()  # a pointer nobody keeps alive would dangle once its step is removed
    for _, path in steps:
        if path not in keep:  # renamed first, so a kill mid-removal never leaves a half step under a step name
            doomed = path.with_name(path.name + ".deleting")
            os.rename(path, doomed)
            shutil.rmtree(doomed)
    return final


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


def run_has_checkpoint(out_dir: str | Path) -> bool:
    """Whether a run directory holds checkpoints (of either layout)."""
    out_dir = Path(out_dir)
    return bool(_step_dirs(out_dir / CHECKPOINTS_DIR)) or any(
        (out_dir / name).exists() for name in (LEGACY_DIR, LEGACY_DIR + ".old")
    )


def checkpoint_steps(out_dir: str | Path) -> list[int]:
    """The steps of the complete checkpoints a run directory holds (``out_dir/checkpoints/<step>``), oldest first."""
    return [step for step, _ in _step_dirs(Path(out_dir) / CHECKPOINTS_DIR)]


def step_checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    """Where a run directory keeps the checkpoint of ``step`` (which :func:`load_policy` opens)."""
    return Path(out_dir) / CHECKPOINTS_DIR / _step_name(step)


def _pointer_target(path: Path) -> Path | None:
    """A ``last``/``best`` pointer written as a file (where symlinks are not allowed) names its step."""
    if path.is_file() and path.name in (LAST_LINK, BEST_LINK):
        try:
            return path.parent / path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
    return None


def resolve_checkpoint(path: str | Path) -> Path:
    """The directory of one checkpoint for ``path``.

    ``path`` may be a pretrained directory (``config.json``), a step directory (``pretrained_model/``), a
    ``last``/``best`` pointer, a checkpoints directory or a run directory (both: the newest complete step), or
    a version-1 checkpoint or run directory (``checkpoint/``, falling back to ``checkpoint.old`` if a save was
    interrupted between its two renames).
    """
    path = Path(path)
    pointed = _pointer_target(path)
    if pointed is not None:
        path = pointed
    if (path / CONFIG_FILE).is_file() or (path / PRETRAINED_DIR / CONFIG_FILE).is_file():
        return path
    for root in (path, path / CHECKPOINTS_DIR):
        steps = _step_dirs(root)
        if steps:
            return steps[-1][1]
    legacy = path / LEGACY_DIR
    if (legacy / CONFIG_FILE).is_file():
        return legacy
    old = legacy.with_name(LEGACY_DIR + ".old")
    if not legacy.exists() and (old / CONFIG_FILE).is_file():
        warnings.warn(f"{legacy} is missing; using {old} (a save was interrupted)", stacklevel=2)
        return old
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the path does not exist")
    if (path / MODEL_FILE).is_file():
        raise CheckpointError(
            f"{path / CONFIG_FILE} is missing: a pretrained directory needs the {CONFIG_FILE} that save_pretrained "
            f"writes beside {MODEL_FILE}"
        )
    raise CheckpointError(
        f"no checkpoint at {path}: expected a pretrained directory ({CONFIG_FILE}, {MODEL_FILE}), a step directory "
        f"({PRETRAINED_DIR}/, {TRAINING_STATE_DIR}/) or a run directory with {CHECKPOINTS_DIR}/"
    )


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def _check_model_type(config_path: Path, found: Any, loader: str) -> None:
    if found != MODEL_TYPE:
        raise CheckpointError(f"{config_path} holds a model of type {found!r}; {loader} loads {MODEL_TYPE!r}")


def read_checkpoint_meta(path: str | Path, loader: str = "load_policy") -> dict[str, Any]:
    """Parse and check the JSON of a checkpoint (format, version, model type) into one record.

    Keys: ``step`` (None for a bare pretrained directory), ``input_shape``, ``target_shape``, ``state_shape``,
    ``policy_config``, ``train_config`` (None when absent), ``files`` (SHA-256 per file), ``extra``,
    ``valid_loss``, ``layout`` (1 or 2) and the private ``_directory`` / ``_model_dir`` / ``_state_dir``.
    """
    directory = resolve_checkpoint(path)
    config_path = directory / CONFIG_FILE
    if config_path.is_file():
        meta = _read_json(config_path, "checkpoint config")
        if meta.get("format") == FORMAT_NAME:
            return _legacy_meta(meta, directory, loader)
        if meta.get("format") != PRETRAINED_FORMAT:
            raise CheckpointError(f"{config_path} is not an rvperceiver checkpoint (format {meta.get('format')!r})")
        model_dir = directory
        sibling_state = directory.parent / TRAINING_STATE_DIR
        state_dir = sibling_state if directory.name == PRETRAINED_DIR and sibling_state.is_dir() else None
        step_dir = directory.parent if state_dir is not None else directory
    else:
        model_dir, state_dir, step_dir = directory / PRETRAINED_DIR, directory / TRAINING_STATE_DIR, directory
        config_path = model_dir / CONFIG_FILE
        meta = _read_json(config_path, "checkpoint config")
        if meta.get("format") != PRETRAINED_FORMAT:
            raise CheckpointError(f"{config_path} is not an rvperceiver checkpoint (format {meta.get('format')!r})")
    if meta.get("format_version", 0) > PRETRAINED_VERSION:
        raise CheckpointError(
            f"{config_path} has format version {meta.get('format_version')}; this library reads up to "
            f"{PRETRAINED_VERSION} (upgrade rvperceiver)"
        )
    _check_model_type(config_path, meta.get("type"), loader)
    for key in ("input_shape", "target_shape", "policy", "files"):
        if key not in meta:
            raise CheckpointError(f"{config_path} lacks the key {key!r}")
    train_path = model_dir / TRAIN_CONFIG_FILE
    record: dict[str, Any] = {
        "layout": 2,
        "step": None,
        "input_shape": meta["input_shape"],
        "target_shape": meta["target_shape"],
        "state_shape": meta.get("state_shape"),
        "policy_config": meta["policy"],
        "train_config": _read_json(train_path, "train config") if train_path.is_file() else None,
        "files": dict(meta["files"]),
        "extra": {},
        "valid_loss": None,
        "_directory": str(step_dir),
        "_model_dir": str(model_dir),
        "_state_dir": str(state_dir) if state_dir is not None else None,
    }
    if state_dir is not None:
        step_record = _read_json(state_dir / STEP_FILE, "training step record")
        if step_record.get("format") != STATE_FORMAT or "step" not in step_record:
            raise CheckpointError(f"{state_dir / STEP_FILE} is not an rvperceiver training-state record")
        record["step"] = int(step_record["step"])
        record["files"].update(step_record.get("files", {}))
        record["extra"] = dict(step_record.get("extra", {}))
        record["valid_loss"] = step_record.get("valid_loss")
    return record


def _legacy_meta(meta: dict[str, Any], directory: Path, loader: str) -> dict[str, Any]:
    """A version-1 ``checkpoint/config.json`` (everything in one directory) as the record of version 2."""
    config_path = directory / CONFIG_FILE
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format version {meta.get('format_version')}; this library reads up to {FORMAT_VERSION}"
        )
    _check_model_type(config_path, meta.get("model_type"), loader)
    for key in ("input_shape", "target_shape", "policy_config", "train_config", "files"):
        if key not in meta:
            raise CheckpointError(f"{config_path} lacks the key {key!r}")
    return {
        "layout": 1,
        "step": int(meta.get("step", 0)),
        "input_shape": meta["input_shape"],
        "target_shape": meta["target_shape"],
        "state_shape": meta.get("state_shape"),
        "policy_config": meta["policy_config"],
        "train_config": meta["train_config"],
        "files": dict(meta["files"]),
        "extra": dict(meta.get("extra", {})),
        "valid_loss": None,
        "_directory": str(directory),
        "_model_dir": str(directory),
        "_state_dir": str(directory),
    }


def _read_safetensors(directory: Path, name: str, meta: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing") from None
    expected = meta["files"].get(name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        record = STEP_FILE if name == STATE_FILE and meta.get("layout") == 2 else CONFIG_FILE
        raise CheckpointError(f"{path} is corrupt: its SHA-256 does not match the one recorded in {record}")
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
    directory = Path(meta["_model_dir"])
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


def _build_saved_policy(meta: dict[str, Any]) -> nn.Module:
    from rvperceiver.model.policy import build_policy  # late import: the model package depends on nothing here

    config_path = Path(meta["_model_dir"]) / CONFIG_FILE
    try:
        policy_config = from_dict({"policy": meta["policy_config"]}).policy
    except ConfigError as error:
        raise CheckpointError(f"{config_path}: the stored config is invalid: {error}") from None
    input_shape = tuple(int(v) for v in meta["input_shape"])
    target_shape = tuple(int(v) for v in meta["target_shape"])
    state_shape = tuple(int(v) for v in meta["state_shape"]) if meta.get("state_shape") else None
    try:
        policy = build_policy(policy_config, input_shape, target_shape, state_shape)
    except (InputError, ConfigError, ValueError) as error:
        raise CheckpointError(f"{config_path}: cannot build the saved policy: {error}") from None
    load_model_weights(meta["_model_dir"], policy, meta)
    return policy


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The saved policy, with its fitted statistics, in eval mode on ``device`` (``Policy.from_pretrained``).

    ``path``: a pretrained directory, a step checkpoint, ``checkpoints/last`` or a run directory (its newest step).
    """
    meta = read_checkpoint_meta(path, loader="Policy.from_pretrained")
    return _build_saved_policy(meta).to(device).eval()


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the saved policy (with its fitted statistics) and its TrainConfig from a training checkpoint.

    ``path`` is a run directory (its newest step), a step directory or a pretrained directory written by
    training. The policy is returned in eval mode on ``device``. Missing files, corrupt files, a checkpoint of
    another model type or weights that do not match the saved config raise ``CheckpointError``.
    """
    meta = read_checkpoint_meta(path)
    if meta["train_config"] is None:
        raise CheckpointError(
            f"{meta['_model_dir']} holds no {TRAIN_CONFIG_FILE} (a policy saved outside training); load it with "
            "Policy.from_pretrained"
        )
    try:
        config = from_dict(meta["train_config"])
    except ConfigError as error:
        raise CheckpointError(f"{Path(meta['_model_dir']) / CONFIG_FILE}: the stored config is invalid: {error}") from None
    policy = _build_saved_policy(meta)
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
    if meta["_state_dir"] is None:
        raise CheckpointError(
            f"{meta['_directory']} is a pretrained policy without training state; resuming needs a step checkpoint "
            f"({CHECKPOINTS_DIR}/<step>/ with {TRAINING_STATE_DIR}/)"
        )
    directory = Path(meta["_state_dir"])
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
    if int(index["step"]) != int(meta["step"]):
        raise CheckpointError(
            f"{directory / STATE_FILE} is of step {index['step']} but its record says step {meta['step']}"
        )
    return TrainingState(step=int(index["step"]), rng=rng, extra=dict(meta.get("extra", {})))
