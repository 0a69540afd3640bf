"""On-disk cache of fitted input-view and target statistics, stored next to the dataset.

Fitting the view statistics streams the whole training split (twice for a z-scored spectral view), which on a
large image dataset costs as much as many training steps — and every run of a sweep over model settings would
repeat it. The statistics depend only on the data and a few settings, so they are cached:

``<data>.rvstats/<key>.safetensors`` holds the statistic buffers (the policy's ``view.*`` and ``target_norm.*``
buffers), ``<key>.json`` what they were computed from. ``<data>`` is the dataset file (robomimic ``.hdf5``) or
directory (LeRobot); the cache directory is its sibling.

The key is the SHA-256 of (data fingerprint, settings, cache format version) where

* the **data fingerprint** is, for every file of the dataset (one file, or every file under the directory in
  sorted order): its relative path, size, modification time in nanoseconds, and the SHA-256 of its first and
  last MiB. Size+mtime catch any ordinary rewrite; the content sample catches a copy that preserved mtime but
  not content of the ends (where HDF5 and parquet keep their headers and footers). A file edited in its middle
  with size and mtime forged to match would be missed — an accepted trade-off against hashing gigabytes;
* the **settings** are everything the statistics depend on: view config, input and target shapes, the
  target-normaliser mode, t_obs/t_pred, keys, split settings and the number of training examples.

A cache entry that cannot be read, whose recorded digest or settings do not match, or whose tensors contain
NaN/Inf is deleted and recomputed, never trusted. A dataset in a read-only location simply is not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

CACHE_FORMAT_VERSION = 1
SAMPLE_BYTES = 1 << 20
STATISTIC_MODULES = ("view", "state_norm", "target_norm")


def _file_fingerprint(path: Path, name: str) -> dict[str, Any]:
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if stat.st_size > 2 * SAMPLE_BYTES:
            handle.seek(stat.st_size - SAMPLE_BYTES)
        digest.update(handle.read(SAMPLE_BYTES))
    return {"name": name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sample_sha256": digest.hexdigest()}


def dataset_fingerprint(path: str | Path) -> list[dict[str, Any]]:
    """Per-file (name, size, mtime, content-sample digest) of a dataset file or directory (see module doc)."""
    path = Path(path)
    if path.is_file():
        return [_file_fingerprint(path, path.name)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return [_file_fingerprint(p, p.relative_to(path).as_posix()) for p in files]
    raise FileNotFoundError(f"dataset {path} does not exist")


def cache_key(fingerprint: list[dict[str, Any]], settings: Mapping[str, Any]) -> str:
    """Hex key of a (dataset fingerprint, settings) pair."""
    blob = json.dumps(
        {"format": CACHE_FORMAT_VERSION, "data": fingerprint, "settings": settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def statistics_state(policy: nn.Module) -> dict[str, torch.Tensor]:
    """The fitted statistics of a policy: every buffer of its ``view`` and ``target_norm`` submodules."""
    state: dict[str, torch.Tensor] = {}
    for module_name in STATISTIC_MODULES:
        module = getattr(policy, module_name, None)
        if module is None:
            continue
        for name, buffer in module.named_buffers():
            state[f"{module_name}.{name}"] = buffer.detach().cpu().contiguous().clone()
    return state


def load_statistics_state(policy: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy cached statistics into the policy's buffers (shapes must match exactly)."""
    expected = statistics_state(policy)
    if set(expected) != set(state):
        raise ValueError(f"cached statistics hold {sorted(state)}, the policy needs {sorted(expected)}")
    buffers = dict(policy.named_buffers())
    with torch.no_grad():
        for name, value in state.items():
            target = buffers[name]
            if target.shape != value.shape:
                raise ValueError(f"cached {name} has shape {tuple(value.shape)}, the policy needs {tuple(target.shape)}")
            target.copy_(value.to(target.device, target.dtype))


class StatsCache:
    """The statistics cache of one dataset (``<data>.rvstats/``); see the module docstring for the key."""

    def __init__(self, data_path: str | Path, cache_dir: str | Path | None = None) -> None:
        self.data_path = Path(data_path)
        base = self.data_path.resolve()
        self.directory = Path(cache_dir) if cache_dir is not None else base.with_name(base.name + ".rvstats")
        self._fingerprint: list[dict[str, Any]] | None = None

    def fingerprint(self) -> list[dict[str, Any]]:
        if self._fingerprint is None:  # computed once per run: the data does not change while we train
            self._fingerprint = dataset_fingerprint(self.data_path)
        return self._fingerprint

    def key(self, settings: Mapping[str, Any]) -> str:
        return cache_key(self.fingerprint(), settings)

    def paths(self, settings: Mapping[str, Any]) -> tuple[Path, Path]:
        key = self.key(settings)
        return self.directory / f"{key}.safetensors", self.directory / f"{key}.json"

    def _discard(self, tensor_path: Path, meta_path: Path, reason: str) -> None:
        warnings.warn(f"statistics cache {tensor_path} is unusable ({reason}); recomputing", stacklevel=3)
        for p in (tensor_path, meta_path):
            try:
                p.unlink()
            except OSError:
                pass

    def load(self, settings: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
        """The cached statistics for ``settings``, or None on a miss or a corrupt entry (which is deleted)."""
        tensor_path, meta_path = self.paths(settings)
        if not tensor_path.exists() and not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            data = tensor_path.read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self._discard(tensor_path, meta_path, f"unreadable: {error}")
            return None
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            self._discard(tensor_path, meta_path, "content digest mismatch")
            return None
        if meta.get("settings") != json.loads(json.dumps(settings, default=str)):
            self._discard(tensor_path, meta_path, "recorded settings differ")
            return None
        try:
            tensors = load_safetensors_bytes(data)
        except (SafetensorError, ValueError, RuntimeError) as error:
            self._discard(tensor_path, meta_path, f"not valid safetensors: {error}")
            return None
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                self._discard(tensor_path, meta_path, f"{name} contains NaN/Inf")
                return None
        return tensors

    def save(self, settings: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> bool:
        """Store statistics atomically; returns False (with a warning) where the location is not writable."""
        tensor_path, meta_path = self.paths(settings)
        data = save_safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        meta = {
            "format": CACHE_FORMAT_VERSION,
            "data": str(self.data_path),
            "fingerprint": self.fingerprint(),
            "settings": json.loads(json.dumps(settings, default=str)),
            "tensors": sorted(tensors),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for path, payload in ((tensor_path, data), (meta_path, json.dumps(meta, indent=2).encode("utf-8"))):
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                with open(tmp, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
        except OSError as error:
            warnings.warn(f"cannot write the statistics cache in {self.directory}: {error}", stacklevel=2)
            return False
        return True

    def get_or_compute(
        self, settings: Mapping[str, Any], compute: Callable[[], Mapping[str, torch.Tensor]], write: bool = True
    ) -> tuple[dict[str, torch.Tensor], bool]:
        """``(statistics, was_cached)``: the cached entry, or ``compute()`` (then stored when ``write``)."""
        cached = self.load(settings)
        if cached is not None:
            return cached, True
        tensors = dict(compute())
        if write:
            self.save(settings, tensors)
        return tensors, False
