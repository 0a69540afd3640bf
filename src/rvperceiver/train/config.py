"""Typed training configuration: YAML file + dotted command-line overrides -> a validated dataclass tree.

Everything a run depends on lives in one :class:`TrainConfig` so that a checkpoint can store it as JSON and a
resumed or re-evaluated run rebuilds exactly the same thing. Loading is strict on purpose: a misspelt key
(``optim.lrr``) would otherwise be silently ignored and the run would train with the default, which is the kind of
mistake that costs a day. So unknown keys, wrong types and out-of-range values all fail up front with a
``ConfigError`` naming the file, the dotted key, what was expected and what came.

The dataclasses are the schema: keys and types are checked from their type hints by the shared
:mod:`rvperceiver.config_schema` (the same code checks the model package's ``PolicyConfig`` tree), and each
``__post_init__`` adds only its ranges and cross-field rules. This module adds what is particular to a training
run's file: strict YAML, ``a.b=c`` overrides, and messages that name the file and the override.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rvperceiver.config_schema import build, check_fields, require, require_choice, to_plain
from rvperceiver.errors import ConfigError
from rvperceiver.model.policy import PolicyConfig

OPTIMIZERS = ("adam", "adamw")
# Optimizer hyper-parameters become float32 tensors on some paths: a larger value overflows there, not here.
FLOAT32_MAX = 3.4028234663852886e38
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


@dataclass
class DataConfig:
    """Where the episodes come from and how they are cut into (observation, target) windows.

    ``path`` is a robomimic HDF5 file or a LeRobot v3 directory; ``image_key``/``ee_key`` None = the reader's
    default. ``image_keys`` (several cameras, side by side) and ``target_key`` (what the policy predicts: an
    end-effector position, ``action``, any numeric per-step key) are the current names of those two; the old
    names keep working. ``streaming`` reads frames per window instead of decoding the dataset into memory
    (LeRobot video through a chunk cache of ``video_cache_mb`` per process). ``state_keys`` names low-dim observations given to the policy beside the frames (robomimic
    ``obs/<key>``, LeRobot features such as ``observation.state``; empty = images only). The split is
    episode-wise. Which episodes validate, in order of precedence: ``valid_episodes`` (episode names, or 0-based
    positions in the dataset's episode order, which work alike on a robomimic file and its LeRobot copy); else
    the dataset's own train/valid masks or splits, when it has both (they win over ``valid_fraction``); else
    ``valid_fraction`` of the episodes drawn with ``split_seed``. ``stats_cache`` reuses fitted view statistics
    stored in ``<data>.rvstats/`` next to the data (the run says where).
    """

    path: str = ""
    image_key: str | None = None
    ee_key: str | None = None
    image_keys: tuple[str, ...] = ()
    target_key: str | None = None
    state_keys: tuple[str, ...] = ()
    streaming: bool = False
    video_cache_mb: int = 256
    t_obs: int = 2
    t_pred: int = 8
    valid_fraction: float = 0.1
    split_seed: int = 0
    valid_episodes: tuple[int | str, ...] | None = None
    stats_cache: bool = True

    def __post_init__(self) -> None:
        check_fields(self, "data")
        if self.image_keys and self.image_key is not None and tuple(self.image_keys) != (self.image_key,):
            raise ConfigError(
                f"data.image_key {self.image_key!r} and data.image_keys {list(self.image_keys)} disagree; give "
                "image_keys only (image_key is its older one-camera name)"
            )
        if self.target_key is not None and self.ee_key is not None and self.target_key != self.ee_key:
            raise ConfigError(
                f"data.ee_key {self.ee_key!r} and data.target_key {self.target_key!r} disagree; give target_key only "
                "(ee_key is its older name)"
            )
        require(self.video_cache_mb >= 1, "data.video_cache_mb", "a positive integer", self.video_cache_mb)
        require(self.t_obs >= 1, "data.t_obs", "a positive integer", self.t_obs)
        require(self.t_pred >= 1, "data.t_pred", "a positive integer", self.t_pred)
        require(0.0 <= self.valid_fraction < 1.0, "data.valid_fraction", "in [0, 1)", self.valid_fraction)


@dataclass
class OptimConfig:
    """Optimiser. ``betas`` defaults to the usual (0.9, 0.999); the seed's large-momentum setting is
    ``optim.betas=[0.999,0.999]``. ``grad_clip`` is a max global L2 norm (None = no clipping)."""

    name: str = "adam"
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        check_fields(self, "optim")
        require_choice("optim.name", self.name, OPTIMIZERS)
        require(0 < self.lr < FLOAT32_MAX, "optim.lr", "a positive number below float32's maximum", self.lr)
        require(all(0.0 <= b < 1.0 for b in self.betas), "optim.betas", "two numbers in [0, 1)", self.betas)
        require(self.eps > 0, "optim.eps", "a positive number", self.eps)
        require(self.weight_decay >= 0, "optim.weight_decay", "a number >= 0", self.weight_decay)
        require(
            self.grad_clip is None or self.grad_clip > 0, "optim.grad_clip", "None or a positive number", self.grad_clip
        )


@dataclass
class ScheduleConfig:
    """Learning rate: linear warm-up from 0 over ``warmup_steps``, then a cosine from ``lr`` down to
    ``lr * min_lr_ratio`` at the last step."""

    warmup_steps: int = 100
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        check_fields(self, "schedule")
        require(self.warmup_steps >= 0, "schedule.warmup_steps", "an integer >= 0", self.warmup_steps)
        require(0.0 <= self.min_lr_ratio <= 1.0, "schedule.min_lr_ratio", "in [0, 1]", self.min_lr_ratio)


@dataclass
class TrainConfig:
    """One training run.

    Run fields: ``steps`` optimiser steps of ``batch_size`` examples (the global batch: a distributed run splits
    it over the processes); evaluation every ``eval_every`` steps on ``eval_batches`` validation batches (0 = the
    whole validation set); a checkpoint every ``checkpoint_every`` steps and at the end, under
    ``<out_dir>/checkpoints/<step>/`` (the newest ``keep_last`` are kept, and with ``keep_best`` also the one of
    lowest validation loss, pointed to by ``checkpoints/best``); a log line every ``log_every`` steps.
    ``device``: auto (CUDA when available), cpu, cuda or cuda:N. ``amp`` = bf16 autocast,
    applied on CUDA only (CPU runs stay float32 and bit-reproducible). ``compile`` = ``torch.compile`` the model.
    ``out_dir`` holds metrics.jsonl, TensorBoard events and the checkpoint ("" = write nothing).
    ``torch_threads``: CPU threads for torch (null = torch's default, one per core); on cores shared with other
    jobs one thread can be several times faster than two, because two threads wait on each other at every op.
    ``view_choice``: ``fixed`` trains with ``policy.view`` as written; ``adaptive`` lets the seed's rule pick raw or
    Fourier from the training split's statistics (keeping ``policy.view.token_mode``) and records the choice.
    """

    data: DataConfig = field(default_factory=DataConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    steps: int = 2000
    batch_size: int = 32
    eval_every: int = 200
    eval_batches: int = 16
    checkpoint_every: int = 500
    keep_last: int = 3
    keep_best: bool = True
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    num_workers: int = 0
    torch_threads: int | None = None
    out_dir: str = "runs/default"
    tensorboard: bool = True
    view_choice: Literal["fixed", "adaptive"] = "fixed"

    def __post_init__(self) -> None:
        check_fields(self, "")
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "log_every"):
            require(getattr(self, name) >= 1, name, "a positive integer", getattr(self, name))
        require(self.keep_last >= 1, "keep_last", "a positive integer (how many step checkpoints to keep)", self.keep_last)
        require(self.eval_batches >= 0, "eval_batches", "an integer >= 0 (0 = all)", self.eval_batches)
        require(self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers)
        require(
            self.torch_threads is None or self.torch_threads >= 1, "torch_threads", "null or an integer >= 1",
            self.torch_threads,
        )
        require(bool(_DEVICE_PATTERN.match(self.device)), "device", "auto, cpu, cuda, cuda:N or mps", self.device)


def check_schedule(config: TrainConfig) -> None:
    """Refuse a run whose schedule or evaluation cadence cannot happen within ``steps``.

    Each field is valid on its own, so the dataclass accepts them; together they can describe a run that silently
    does something else than intended: a warm-up longer than the run never reaches ``optim.lr`` (with 200 warm-up
    steps a 40-step run peaks at a fifth of it), and an ``eval_every`` larger than the run evaluates only once,
    at the end, so the learning curve has one point.
    """
    steps, warmup = config.steps, config.schedule.warmup_steps
    if warmup > steps:
        peak = config.optim.lr * steps / warmup
        raise ConfigError(
            f"schedule.warmup_steps={warmup} is longer than the run (steps={steps}): the learning rate would peak "
            f"at {peak:.3g} instead of optim.lr={config.optim.lr:g}; set schedule.warmup_steps to at most {steps} "
            f"(e.g. {max(0, steps // 10)}) or train longer"
        )
    if config.eval_every > steps:
        raise ConfigError(
            f"eval_every={config.eval_every} is larger than the run (steps={steps}): validation would run only at "
            f"the end; set eval_every to at most {steps} (e.g. {max(1, steps // 10)})"
        )


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from plain data (the inverse of :func:`to_dict`); missing keys = defaults."""
    return build(TrainConfig, data)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON/YAML-ready data of a config dataclass (tuples become lists)."""
    return to_plain(config)


def to_json(config: TrainConfig) -> str:
    return json.dumps(to_dict(config), indent=2, sort_keys=False)


def to_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


# ----------------------------------------------------------------------------------------------------------------
# YAML reading and overrides
# ----------------------------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` as a float and rejects duplicate keys.

    YAML 1.1 (PyYAML) needs a dot in a float, so ``lr: 1e-3`` would otherwise load as the *string* "1e-3"; and a
    key written twice would silently keep the last value.
    """


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_without_duplicates)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error becomes a ConfigError naming ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader derives from SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split ``"a.b=c"`` into (["a", "b"], parsed c); the value is read as a YAML scalar or list."""
    if not isinstance(override, str) or "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.subkey=value")
    key, text = override.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {override!r} has an empty key part")
    return parts, parse_yaml(text, f"override {override!r}")


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set each dotted override in the nested dict ``raw`` (in place, creating sections that are absent)."""
    for override in overrides:
        parts, value = parse_override(override)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override {override!r}: {'.'.join(parts[: i + 1])} is a value ({child!r}), not a section"
                )
            node = child
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (None = all defaults), apply ``a.b=c`` overrides, validate, return a TrainConfig."""
    raw: Any = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except OSError as error:
            raise ConfigError(f"cannot read config file {source}: {error}") from None
        raw = parse_yaml(text, source)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        apply_overrides(raw, overrides)
        return from_dict(raw)
    except ConfigError as error:
        message = str(error)
        # Say which override set the offending key, since the file does not contain it.
        culprits = [o for o in overrides if "=" in o and o.split("=", 1)[0].strip() in message]
        note = f" (set by override {culprits[-1]!r})" if culprits else ""
        raise ConfigError(f"{source}: {message}{note}") from None
