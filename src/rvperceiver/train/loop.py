"""The training loop: one function, :func:`train`, readable top to bottom.

What it does, in order:

1. join the process group if started by ``torchrun`` (see ``distributed.py``), pick the device, seed everything;
2. build the policy from the config (input/target shapes from the first training example);
3. fit the policy's view and target statistics on the training set — or take them from the on-disk stats cache,
   or from the checkpoint when resuming;
4. Adam/AdamW with a linear warm-up + cosine learning rate, optionally resumed from the checkpoint;
5. step: forward (bf16 autocast on CUDA), MSE against normalised targets, backward, clip, optimizer step.
   Data order is a pure function of (seed, step), so a resumed run sees exactly the batches it would have seen;
6. every ``eval_every`` steps: validation loss, NMSE, spread, collapse verdict and MSE in metres;
   every ``log_every``: a line in ``metrics.jsonl`` (and TensorBoard); every ``checkpoint_every``: a checkpoint.

A NaN/Inf loss or gradient stops training with ``NonFiniteError`` naming the step; the last good checkpoint on
disk is left as it was.
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rvperceiver.errors import CheckpointError, ConfigError, InputError, NonFiniteError
from rvperceiver.observation import split_observation
from rvperceiver.train.checkpoint import (
    CHECKPOINTS_DIR,
    capture_rng_state,
    load_model_weights,
    load_training_state,
    read_checkpoint_meta,
    restore_rng_state,
    save_checkpoint,
)
from rvperceiver.train.config import TrainConfig, from_dict, to_dict
from rvperceiver.train.distributed import (
    DistributedContext,
    StreamBatchSampler,
    all_reduce_mean,
    init_distributed,
    shutdown_distributed,
)
from rvperceiver.train.evaluate import autocast_bf16, autocast_for, evaluate
from rvperceiver.train.flops import count_step_flops, peak_flops
from rvperceiver.train.metrics import EvalMetrics, collapse_advice
from rvperceiver.train.metrics_log import MetricsLog
from rvperceiver.train.stats_cache import StatsCache, load_statistics_state, statistics_state

CHECKPOINT_DIRNAME = CHECKPOINTS_DIR


class CollapseWarning(UserWarning):
    """Validation says the policy predicts (nearly) the mean trajectory for every input."""


@dataclass
class TrainResult:
    """What a call to :func:`train` produced.

    ``train_losses`` has one entry per step run in this call (the global-batch mean of the normalised MSE);
    ``evals`` one dict per evaluation (``step`` plus the fields of :class:`EvalMetrics`); ``statistics`` says
    where the view/target statistics came from: "fitted", "cache", "checkpoint" or "given".
    """

    policy: nn.Module
    config: TrainConfig
    step: int
    train_losses: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    final: EvalMetrics | None = None
    out_dir: Path | None = None
    checkpoint: Path | None = None
    statistics: str = "fitted"


# ----------------------------------------------------------------------------------------------------------------
# Small helpers (each does one thing; the loop below reads like the numbered list above)
# ----------------------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Linear warm-up ``(step+1)/warmup`` (so the first step is not wasted at lr 0), then a half cosine from 1 down to
    ``min_lr_ratio`` at the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(policy: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay the matrices, not the rest: weights with two or more dimensions (linear and convolution kernels, the
    latent array, learned position tables) get ``weight_decay``; biases, norm gains and other vectors get none,
    since shrinking a gain or an offset towards zero only shifts or rescales a layer's output. With no decay it is
    one group, the layout of checkpoints written before the split."""
    parameters = [p for p in policy.parameters() if p.requires_grad]
    if weight_decay == 0:
        return [{"params": parameters, "weight_decay": 0.0}]
    return [
        {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
    ]


def make_optimizer(policy: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    optim = config.optim
    cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
    groups = parameter_groups(policy, optim.weight_decay)
    return cls(groups, lr=optim.lr, betas=optim.betas, eps=optim.eps)


def step_loss(model: nn.Module, policy: nn.Module, x: Any, y: torch.Tensor, config: TrainConfig,
              device: torch.device) -> torch.Tensor:
    """The training objective of one batch: MSE of ``model(x)`` (the policy, or its DDP/compiled wrapper) against the
    policy's normalised targets, the forward under the run's autocast and the loss in float32."""
    with autocast_for(config, device):
        prediction = model(x)
    return F.mse_loss(prediction.float(), policy.target_norm.normalize(y))


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    schedule = config.schedule
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, schedule.warmup_steps, config.steps, schedule.min_lr_ratio)
    )


def _example_shapes(dataset: Dataset) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...] | None]:
    """``(input shape, target shape, low-dim observation shape or None)`` of one training example."""
    if not isinstance(dataset, Sized) or len(dataset) == 0:
        raise InputError("train_set is empty (or has no len()): nothing to train on")
    item = dataset[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise InputError(f"train_set[0] must be an (input, target) pair, got {type(item).__name__}")
    image, state = split_observation(item[0])
    x, y = torch.as_tensor(image), torch.as_tensor(item[1])
    if y.dim() != 2:
        raise InputError(f"targets must be [T_pred, D] per example, got shape {tuple(y.shape)}")
    state_shape = tuple(torch.as_tensor(state).shape) if state is not None else None
    return tuple(x.shape), tuple(y.shape), state_shape


def to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """A batch input (a tensor, or a mapping of tensors as in ``rvperceiver.observation``) on ``device``."""
    if isinstance(batch, dict):
        return {key: value.to(device, non_blocking=non_blocking) for key, value in batch.items()}
    return batch.to(device, non_blocking=non_blocking)


def check_output_dir(out_dir: Path, bytes_needed: int) -> None:
    """Fail before training, not after an hour, if ``out_dir`` cannot hold the run's outputs."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{time.monotonic_ns()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"out_dir {out_dir} is not writable: {error}") from None
    free = shutil.disk_usage(out_dir).free
    if free < bytes_needed:
        raise ConfigError(
            f"out_dir {out_dir} has {free / 2**20:.1f} MiB free; checkpoints of this model need about "
            f"{bytes_needed / 2**20:.1f} MiB"
        )


def _checkpoint_bytes_needed(policy: nn.Module, keep: int) -> int:
    state_bytes = sum(t.numel() * t.element_size() for t in policy.state_dict().values())
    # model + two Adam moments per kept step, plus the step being written, plus slack for logs.
    return (keep + 1) * 3 * state_bytes + (16 << 20)


def _statistics_fitted(policy: nn.Module) -> bool:
    modules = [m for m in policy.modules() if m is not policy and hasattr(m, "is_fitted")]
    return bool(modules) and all(bool(m.is_fitted) for m in modules)


def _statistics_settings(policy: nn.Module, config: TrainConfig, train_size: int) -> dict[str, Any]:
    """Everything the fitted statistics depend on (the stats-cache key besides the data itself)."""
    data = config.data
    return {
        "view": to_dict(policy.config.view),
        "target_norm": policy.config.target_norm,
        "input_shape": list(policy.input_shape),
        "target_shape": list(policy.target_shape),
        "t_obs": data.t_obs,
        "t_pred": data.t_pred,
        "image_key": data.image_key,
        "ee_key": data.ee_key,
        "valid_fraction": data.valid_fraction,
        "split_seed": data.split_seed,
        "train_examples": train_size,
        # Only when set, so image-only runs keep the cache entries written before low-dim keys existed.
        **({"state_keys": list(data.state_keys)} if data.state_keys else {}),
        **({"image_keys": list(data.image_keys)} if data.image_keys else {}),
        **({"target_key": data.target_key} if data.target_key is not None else {}),
        # Only when set, so that the cache keys of runs that do not name validation episodes stay as they were.
        **({"valid_episodes": list(data.valid_episodes)} if data.valid_episodes is not None else {}),
    }


def _fit_statistics(
    policy: nn.Module,
    train_set: Dataset,
    config: TrainConfig,
    stats_cache: StatsCache | None,
    context: DistributedContext,
    progress: bool = False,
) -> str:
    """Fit (or fetch from the cache) the view and target statistics; returns where they came from."""
    from rvperceiver.progress import Passes

    loader = DataLoader(train_set, batch_size=max(config.batch_size, 64), shuffle=False, num_workers=config.num_workers)
    shown = Passes(loader, "statistics", enabled=progress and context.is_main)

    def fit() -> dict[str, torch.Tensor]:
        # Every process fits the same statistics on the same data (deterministic), so no broadcast is needed.
        policy.fit_statistics(shown, shown)  # view: one or two passes, targets: one more
        return statistics_state(policy)

    if stats_cache is None:
        fit()
        return "fitted"
    settings = _statistics_settings(policy, config, len(train_set))  # type: ignore[arg-type]
    tensors, cached = stats_cache.get_or_compute(settings, fit, write=context.is_main)
    if cached:
        load_statistics_state(policy, tensors)
        return "cache"
    return "fitted"


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf where two nested config dicts differ."""
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += _differences(left, right, f"{prefix}{key}.")
        elif left != right:
            out.append((f"{prefix}{key}", left, right))
    return out


def _load_model_for_resume(policy: nn.Module, checkpoint_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """Load the newest checkpoint's weights and statistics into a freshly built policy of the same config;
    returns its record (``read_checkpoint_meta``), whose directory the training state is then read from."""
    meta = read_checkpoint_meta(checkpoint_dir)
    checkpoint_dir = Path(meta["_directory"])
    try:  # through the schema, so fields added since the checkpoint was written compare as their defaults
        stored = to_dict(from_dict({"policy": meta["policy_config"]}).policy)
    except ConfigError as error:
        raise CheckpointError(f"cannot resume from {checkpoint_dir}: its policy config is invalid: {error}") from None
    current = to_dict(policy.config)
    if stored != current:
        differing = ", ".join(
            f"policy.{key}: checkpoint {old!r}, this run {new!r}" for key, old, new in _differences(stored, current)
        )
        raise CheckpointError(
            f"cannot resume from {checkpoint_dir}: its policy config differs from the one of this run ({differing}); "
            "resume with the config the run was started with (set those keys as overrides)"
        )
    stored_state = meta.get("state_shape")
    policy_state = getattr(policy, "state_shape", None)
    if stored_state != (list(policy_state) if policy_state is not None else None):
        raise CheckpointError(
            f"cannot resume from {checkpoint_dir}: it was trained with low-dim observations {stored_state}, this "
            f"data gives {list(policy_state) if policy_state is not None else None}"
        )
    if list(meta["input_shape"]) != list(policy.input_shape) or list(meta["target_shape"]) != list(policy.target_shape):
        raise CheckpointError(
            f"cannot resume from {checkpoint_dir}: it was trained on inputs {meta['input_shape']} -> "
            f"{meta['target_shape']}, this data gives {list(policy.input_shape)} -> {list(policy.target_shape)}"
        )
    load_model_weights(checkpoint_dir, policy, meta)
    return meta


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    train_set: Dataset,
    valid_set: Dataset | None,
    policy: nn.Module | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stats_cache: StatsCache | None = None,
    stop_at_step: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train a policy on ``train_set`` (a Dataset of ``(input, target [T_pred, D])`` pairs).

    ``policy`` None = build one from ``config.policy``. ``out_dir`` overrides ``config.out_dir``; an empty out_dir
    writes nothing (no metrics, no checkpoints). ``resume`` continues from the newest step under
    ``<out_dir>/checkpoints/`` (or a version-1 ``<out_dir>/checkpoint/``) exactly where it stopped. ``stats_cache`` reuses fitted statistics across runs. ``stop_at_step`` ends the run early at that
    step with a checkpoint, as a scheduler's time limit would (the schedule still spans ``config.steps``).
    ``on_step(step, loss)`` is called after every optimisation step (e.g. a caller's own progress display).
    """
    context = init_distributed(config.device)
    try:
        return _train(
            config, train_set, valid_set, policy, out_dir, resume, progress, stats_cache, stop_at_step, context, on_step
        )
    finally:
        shutdown_distributed(context)


def _train(
    config: TrainConfig,
    train_set: Dataset,
    valid_set: Dataset | None,
    policy: nn.Module | None,
    out_dir: str | Path | None,
    resume: bool,
    progress: bool,
    stats_cache: StatsCache | None,
    stop_at_step: int | None,
    context: DistributedContext,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    from tqdm.auto import tqdm

    from rvperceiver.model.policy import build_policy

    device = context.device
    out_value = str(out_dir) if out_dir is not None else config.out_dir
    out = Path(out_value) if out_value else None
    if resume and out is None:
        raise ConfigError("resume=True needs an out_dir holding the checkpoint to resume from")
    checkpoint_dir = out / CHECKPOINT_DIRNAME if out is not None else None

    # 1-2. Seed, then build the policy (its initial weights are a function of the seed).
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    seed_everything(config.seed)
    input_shape, target_shape, state_shape = _example_shapes(train_set)
    if policy is None:
        policy = build_policy(config.policy, input_shape, target_shape, state_shape)
    elif (
        tuple(policy.input_shape) != input_shape
        or tuple(policy.target_shape) != target_shape
        or getattr(policy, "state_shape", None) != state_shape
    ):
        raise InputError(
            f"the given policy expects {tuple(policy.input_shape)} -> {tuple(policy.target_shape)} (low-dim "
            f"observations {getattr(policy, 'state_shape', None)}), the training data is {input_shape} -> "
            f"{target_shape} (low-dim observations {state_shape})"
        )
    policy.to(device)
    if out is not None and context.is_main:
        check_output_dir(out, _checkpoint_bytes_needed(policy, config.keep_last + int(config.keep_best)))

    # 3. Statistics: from the checkpoint when resuming, else the cache, else fitted on the training set.
    resumed_from: Path | None = None
    if resume:
        resumed_from = Path(_load_model_for_resume(policy, out, config)["_directory"])  # type: ignore[arg-type]
        statistics = "checkpoint"
    elif _statistics_fitted(policy):
        statistics = "given"
    else:
        statistics = _fit_statistics(policy, train_set, config, stats_cache, context, progress)

    # The module that runs the training step: maybe DDP-wrapped and/or compiled. `policy` stays the plain model.
    model: nn.Module = policy
    if context.enabled:
        model = nn.parallel.DistributedDataParallel(
            policy, device_ids=[device] if device.type == "cuda" else None, broadcast_buffers=False
        )
    if config.compile:
        model = torch.compile(model)

    # 4. Optimizer and schedule (restored, with the RNG, when resuming).
    optimizer = make_optimizer(policy, config)
    scheduler = make_scheduler(optimizer, config)
    start_step = 0
    rng_to_restore = None
    if resume:
        state = load_training_state(resumed_from, optimizer, scheduler)  # type: ignore[arg-type]
        start_step, rng_to_restore = state.step, state.rng
    last_step = config.steps if stop_at_step is None else min(config.steps, stop_at_step)

    sampler = StreamBatchSampler(
        len(train_set),  # type: ignore[arg-type]
        config.batch_size,
        config.seed,
        start_step=start_step,
        rank=context.rank,
        world_size=context.world_size,
    )
    loader = DataLoader(
        train_set,
        batch_sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),  # worker seeds from here, not the global RNG
    )
    log = MetricsLog(out if context.is_main else None, config.tensorboard, start_step if resume else None)
    result = TrainResult(policy=policy, config=config, step=start_step, out_dir=out, statistics=statistics)
    last_saved_step: int | None = start_step if resume else None
    if context.is_main and out is not None:
        log.write({"kind": "start", "step": start_step, "statistics": statistics, "world_size": context.world_size})

    if rng_to_restore is not None:
        restore_rng_state(rng_to_restore)
    bar = tqdm(total=last_step, initial=start_step, disable=not (progress and context.is_main), desc="train")
    batches = iter(loader)
    model.train()
    started = time.perf_counter()
    flops_per_step: float | None = None  # counted on the first batch (see flops.py)
    peak = peak_flops(device, bf16=autocast_bf16(config, device))
    window_seconds, window_steps = 0.0, 0
    try:
        for step in range(start_step, last_step):
            # 5. One optimisation step.
            step_started = time.perf_counter()
            x, y = next(batches)
            x, y = to_device(x, device, non_blocking=True), y.to(device, non_blocking=True).float()
            if flops_per_step is None:  # the plain policy: no DDP hooks or compilation inside the count
                flops_per_step = count_step_flops(policy, lambda: step_loss(policy, policy, x, y, config, device))
                step_started = time.perf_counter()  # the count is not part of the step's time
            loss = step_loss(model, policy, x, y, config, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            max_norm = config.optim.grad_clip if config.optim.grad_clip is not None else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), max_norm))
            global_loss = float(all_reduce_mean(loss.detach().clone(), context))  # same on every process
            if not math.isfinite(global_loss) or not math.isfinite(grad_norm):
                what = "loss" if not math.isfinite(global_loss) else "gradient norm"
                value = global_loss if what == "loss" else grad_norm
                raise NonFiniteError(
                    f"training diverged at step {step + 1}: the {what} is {value}; the weights were not updated "
                    + (
                        f"and the last good checkpoint (step {last_saved_step}) in {checkpoint_dir} is kept"
                        if last_saved_step is not None
                        else "and no checkpoint was written"
                    )
                    + ". Try a lower optim.lr, a smaller optim.grad_clip or a longer schedule.warmup_steps"
                )
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            done = step + 1
            window_seconds += time.perf_counter() - step_started
            window_steps += 1
            result.train_losses.append(global_loss)
            bar.update(1)
            if on_step is not None:
                on_step(done, global_loss)

            if done % config.log_every == 0 or done == last_step:
                # Achieved FLOP/s of this process over the steps since the last line (eval and checkpoints not
                # counted), and its share of the device's peak where the peak is known (MFU, as nanoGPT logs it).
                achieved = flops_per_step * window_steps / window_seconds if window_seconds > 0 else None
                mfu = achieved / peak if achieved is not None and peak else None
                window_seconds, window_steps = 0.0, 0
                bar.set_postfix(loss=f"{global_loss:.4g}", lr=f"{lr:.2e}", **({"mfu": f"{100 * mfu:.1f}%"} if mfu else {}))
                if context.is_main:
                    log.write(
                        {
                            "kind": "train",
                            "step": done,
                            "loss": global_loss,
                            "lr": lr,
                            "grad_norm": grad_norm,
                            "elapsed_s": time.perf_counter() - started,
                            "flops_per_step": flops_per_step,
                            "flops_per_s": achieved,
                            "mfu": mfu,
                        }
                    )

            # 6. Evaluation and collapse diagnosis.
            if done % config.eval_every == 0 or done == last_step:
                metrics = evaluate(policy, valid_set, config, context)
                model.train()
                if metrics is not None:
                    record = {"step": done, **metrics.to_dict()}
                    result.evals.append(record)
                    result.final = metrics
                    if context.is_main:
                        log.write({"kind": "eval", **record})
                        if progress:
                            bar.write(
                                f"step {done}: val loss {metrics.loss:.4g}  nmse {metrics.nmse:.3f}  "
                                f"spread {metrics.spread:.3f}  rmse {metrics.rmse_m * 1000:.1f} mm  [{metrics.verdict}]",
                                file=sys.stderr,  # beside the bar: stdout keeps the command's result
                            )
                        if metrics.verdict == "collapsed" and done > config.schedule.warmup_steps:
                            warnings.warn(
                                f"step {done}: the policy looks collapsed to the mean (val NMSE {metrics.nmse:.3f}, "
                                f"prediction spread {metrics.spread:.3f} of the targets'). "
                                + collapse_advice(policy.config.view, policy.config.backbone, config.steps),
                                CollapseWarning,
                                stacklevel=3,  # point at the caller of train()
                            )

            # Checkpoint (the main process writes; weights are identical everywhere).
            if checkpoint_dir is not None and (done % config.checkpoint_every == 0 or done == last_step):
                if context.is_main:
                    extra = {"last_eval": result.evals[-1] if result.evals else None}
                    evaluated_now = bool(result.evals) and result.evals[-1]["step"] == done
                    try:
                        result.checkpoint = save_checkpoint(
                            checkpoint_dir,
                            policy,
                            config,
                            optimizer,
                            scheduler,
                            step=done,
                            rng=capture_rng_state(),
                            extra=extra,
                            valid_loss=result.evals[-1]["loss"] if evaluated_now else None,
                        )
                    except OSError as error:  # e.g. the disk filled up during the run: say what is kept
                        kept = (
                            f"the last good checkpoint (step {last_saved_step}) is kept; resume with --resume"
                            if last_saved_step is not None
                            else "no earlier checkpoint exists"
                        )
                        raise CheckpointError(
                            f"cannot write the checkpoint of step {done} to {checkpoint_dir}: {error}; {kept}"
                        ) from error
                last_saved_step = done
            result.step = done
    finally:
        bar.close()
        log.close()
    policy.eval()
    return result
