"""Closed-loop evaluation on a task tier: predicted setpoints fed to the demonstrator's own tracker.

A *chunk predictor* maps an observation window to the next ``t_pred`` setpoints (``chunk[i]`` = the setpoint for
step ``t + i``, exactly what the demos' ``robot0_eef_setpoint`` windows hold). The policy's own per-step machinery,
:class:`rvperceiver.model.rollout.ChunkRollout` (the one behind ``Policy.select_action``), turns chunks into one
setpoint per step: execute the first ``execute`` and predict again (receding horizon, as Diffusion Policy executes
8 of 16), or, with ``ensemble`` set, predict every step and average the chunks covering it with ACT's weights
``exp(-m·i)``. Each setpoint goes to the demonstrator's tracker.

All episodes run in lockstep as one batch (``select_action`` on ``[B, H, W, C]``), so a policy answers one batched
query per re-planning step for every episode, and frames are rendered only at the steps a query will look at
(the others are passed as blank frames the policy never sees). Physics runs in one render-less Reacher-v5 per
episode; a single rendering env (the tier's drawing: hidden arm, target scale) is put in each episode's state to
take its picture.

References, run by the same loop on the same seeds:

- ``expert``: the tracker given the expert's plan one setpoint per step (what the demos recorded);
- ``oracle``: a predictor that returns the expert's plan for the next ``t_pred`` steps, through the same
  receding horizon or ensembling as the policy. With setpoint labels it reproduces the expert exactly;
- a constant chunk (e.g. the mean training target: the mean predictor).

Scores per episode: the final planar fingertip–target distance, its minimum over the episode, success within
``success_radius`` (2 cm, primary) and ``strict_radius`` (1 cm) at the last step, and "ever within 2 cm".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rvperceiver.errors import InputError
from rvperceiver.model.rollout import ChunkRollout, RolloutConfig
from rvperceiver.observation import IMAGE, STATE
from rvperceiver.sim.expert import MinimumJerkPlanner
from rvperceiver.sim.kinematics import ArmGeometry
from rvperceiver.sim.reacher import ENV_ID, EPISODE_STEPS, make_reacher, render_frame
from rvperceiver.sim.tiers import Tier, copy_state, get_tier, reset_episode, state_vector
from rvperceiver.sim.tracker import make_tracker

ChunkFn = Callable[[Any], Any]
"""``{observation.image: uint8 [B, t_obs, H, W, C], observation.state: float32 [B, t_obs, S]}`` (the batch
``ChunkRollout`` builds; ``observation.state`` only for a predictor with ``uses_state = True``: the tier's
``state_keys`` concatenated, e.g. 4 values on ``arm-hidden``) → setpoints
``[B, t_pred, ≥2]`` in metres. A predictor with ``needs_frames = False`` is called with None; one with
``uses_episode = True`` is called as ``fn(step, seeds)`` instead (references that know the episode, e.g. replays)."""

DEFAULT_EVAL_SEED = 100_000


@dataclass(frozen=True)
class ClosedLoopConfig:
    """Settings of one closed-loop evaluation (the render settings must match the training demos')."""

    tier: str = "stock"
    target_scale: float = 1.0
    episodes: int = 200
    seed: int = DEFAULT_EVAL_SEED
    t_obs: int = 2
    t_pred: int = 8
    execute: int = 4
    ensemble: float | None = None
    image_size: int = 64
    episode_steps: int = EPISODE_STEPS
    tracker: str = "inverse_dynamics"
    plan_steps: int = 20
    success_radius: float = 0.02
    strict_radius: float = 0.01
    query_batch: int = 64

    def __post_init__(self) -> None:
        get_tier(self.tier, self.target_scale)  # an unknown tier is one clear line
        for name, minimum in (("episodes", 1), ("seed", 0), ("t_obs", 1), ("t_pred", 1), ("episode_steps", 1),
                              ("image_size", 8), ("plan_steps", 1), ("query_batch", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise InputError(f"closed loop: {name} must be an int >= {minimum}, got {value!r}")
        if isinstance(self.execute, bool) or not isinstance(self.execute, int) or not 1 <= self.execute <= self.t_pred:
            raise InputError(f"closed loop: execute must be an int in 1..t_pred={self.t_pred}, got {self.execute!r}")
        if self.ensemble is not None and not (np.isfinite(self.ensemble) and self.ensemble >= 0):
            raise InputError(f"closed loop: ensemble must be None or a finite m >= 0 (weights exp(-m·i)), got {self.ensemble!r}")
        if not 0 < self.strict_radius <= self.success_radius:
            raise InputError(
                f"closed loop: need 0 < strict_radius <= success_radius, got {self.strict_radius!r}, {self.success_radius!r}"
            )
        make_tracker(self.tracker)

    @property
    def seeds(self) -> range:
        return range(int(self.seed), int(self.seed) + int(self.episodes))

    def tier_spec(self) -> Tier:
        return get_tier(self.tier, self.target_scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_seed_overlap(eval_seeds: range, train_seeds: Iterable[int] | None) -> None:
    """One clear line if any evaluation seed was also used to make training demos."""
    if train_seeds is None:
        return
    train = train_seeds if isinstance(train_seeds, range) else {int(s) for s in train_seeds}
    overlap = [s for s in eval_seeds if s in train]
    if overlap:
        shown = f"{train.start}..{train.stop - 1}" if isinstance(train, range) else f"{len(train)} seeds"
        raise InputError(
            f"evaluation seeds {eval_seeds.start}..{eval_seeds.stop - 1} overlap the training seeds ({shown}) in "
            f"{len(overlap)} places (first {overlap[0]}); expected evaluation seeds outside the training range"
        )


# ---------------------------------------------------------------------------------------------------------------
# Chunk predictors
# ---------------------------------------------------------------------------------------------------------------


def constant_chunk_fn(chunk: np.ndarray) -> ChunkFn:
    """Always the same chunk (e.g. the mean training target: the mean predictor)."""
    fixed = np.asarray(chunk, dtype=np.float64)
    if fixed.ndim != 2 or fixed.shape[1] < 2 or not np.all(np.isfinite(fixed)):
        raise InputError(f"constant_chunk_fn: chunk must be a finite [t_pred, D>=2] array, got shape {fixed.shape}")

    def run(step: int, seeds: np.ndarray) -> np.ndarray:
        return np.broadcast_to(fixed, (len(seeds), *fixed.shape)).copy()

    run.uses_episode = True  # type: ignore[attr-defined]
    return run


def policy_chunk_fn(policy: torch.nn.Module) -> ChunkFn:
    """A ``Policy``'s ``predict_chunk`` (frames, and the joint state when it was trained with ``state_keys``)."""
    if not hasattr(policy, "predict_chunk"):
        raise InputError(f"policy_chunk_fn: expected a Policy with predict_chunk(), got {type(policy).__name__}")
    policy.eval()

    def run(batch: Any) -> np.ndarray:
        return policy.predict_chunk(batch).detach().float().cpu().numpy()

    run.uses_state = getattr(policy, "state_shape", None) is not None  # type: ignore[attr-defined]
    return run


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------


def _needed_frame_steps(config: ClosedLoopConfig) -> set[int]:
    """Steps whose frame some query looks at: ``ChunkRollout`` predicts at step 0 and whenever its queue of
    ``execute`` setpoints runs out (every step when ensembling), and a query at step q sees frames q − t_obs + 1 … q."""
    queries = range(config.episode_steps) if config.ensemble is not None else range(0, config.episode_steps, config.execute)
    return {s for q in queries for s in range(max(0, q - config.t_obs + 1), q + 1)}


def _checked(chunk: Any, batch: int, t_pred: int, label: str) -> np.ndarray:
    values = np.asarray(chunk, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] != batch or values.shape[1] != t_pred or values.shape[2] < 2:
        raise InputError(
            f"closed loop ({label}): the predictor must return [B={batch}, t_pred={t_pred}, D>=2] setpoints, got "
            f"shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise InputError(f"closed loop ({label}): the predictor returned NaN/Inf setpoints")
    return values[:, :, :2]


def run_closed_loop(
    predictor: ChunkFn | str,
    config: ClosedLoopConfig,
    *,
    train_seeds: Iterable[int] | None = None,
    strip_path: str | Path | None = None,
    strip_episodes: int = 4,
    label: str = "policy",
    record_paths: bool = False,
) -> dict[str, Any]:
    """Roll ``predictor`` (a :data:`ChunkFn`, or ``"expert"`` / ``"oracle"``) out on the config's seeds.

    Returns ``{"label", "settings", "episodes": [{seed, final_distance, min_distance, success, success_strict,
    ever_within}], "success_rate", "strict_success_rate", "ever_within_rate", "median_final_distance",
    "mean_final_distance"}``; with ``strip_path``, the path of a PNG strip of the first episodes (arm always
    drawn); with ``record_paths``, ``paths``: the fingertip xy before each step and after the last, ``[B, steps+1, 2]``.
    """
    if not isinstance(config, ClosedLoopConfig):
        raise InputError(f"run_closed_loop: config must be a ClosedLoopConfig, got {type(config).__name__}")
    seeds = config.seeds
    check_seed_overlap(seeds, train_seeds)
    if isinstance(predictor, str) and predictor not in ("expert", "oracle"):
        raise InputError(f"run_closed_loop: predictor must be a chunk function, 'expert' or 'oracle', got {predictor!r}")
    tier = config.tier_spec()
    planner = MinimumJerkPlanner(config.plan_steps)
    envs = [gym.make(ENV_ID) for _ in seeds]
    needs_frames = (
        not isinstance(predictor, str)
        and not getattr(predictor, "uses_episode", False)
        and getattr(predictor, "needs_frames", True)
    )
    camera = make_reacher(config.image_size, tier=tier) if needs_frames else None
    display = make_reacher(config.image_size, tier=get_tier("stock", tier.target_scale)) if strip_path else None
    for env in (camera, display):
        if env is not None:
            env.reset(seed=0)  # Gymnasium renders only after a reset; each episode's state is copied in later
    try:
        return _run(predictor, config, tier, planner, envs, camera, display, strip_path, strip_episodes, label, record_paths)
    finally:
        for env in envs:
            env.close()
        for env in (camera, display):
            if env is not None:
                env.close()


def _run(
    predictor: ChunkFn | str,
    config: ClosedLoopConfig,
    tier: Tier,
    planner: MinimumJerkPlanner,
    envs: list[gym.Env],
    camera: gym.Env | None,
    display: gym.Env | None,
    strip_path: str | Path | None,
    strip_episodes: int,
    label: str,
    record_paths: bool,
) -> dict[str, Any]:
    batch, steps = len(envs), config.episode_steps
    trackers = [make_tracker(config.tracker) for _ in envs]
    plans = np.empty((batch, steps, 2))
    for i, (env, seed) in enumerate(zip(envs, config.seeds)):
        reset_episode(env, seed, tier)
        base = env.unwrapped
        geometry = ArmGeometry.from_model(base.model)
        plans[i] = planner.plan(geometry, base.data.qpos[:2], base.data.body("target").xpos[:2], steps)
        trackers[i].reset(base.model, base.data, float(base.dt))
    frame_steps = _needed_frame_steps(config) if camera is not None else set()
    strip_steps = set(np.linspace(0, steps, num=11).round().astype(int).tolist()) if display is not None else set()
    strip_rows: list[list[np.ndarray]] = [[] for _ in range(min(strip_episodes, batch))]
    distances = np.empty((batch, steps + 1))
    paths = np.empty((batch, steps + 1, 2))
    seeds = np.asarray(config.seeds)
    now = {"step": 0}
    uses_state = camera is not None and bool(getattr(predictor, "uses_state", False))

    if predictor == "oracle":
        def chunk_fn(observation: Any) -> np.ndarray:
            return plans[:, np.minimum(np.arange(now["step"], now["step"] + config.t_pred), steps - 1)]
    elif getattr(predictor, "uses_episode", False):
        def chunk_fn(observation: Any) -> np.ndarray:
            return predictor(now["step"], seeds)  # type: ignore[operator,misc]
    else:
        def chunk_fn(observation: Any) -> np.ndarray:
            if observation is None:  # a predictor that needs no frames
                return predictor(None)  # type: ignore[operator]
            parts = []
            for start in range(0, batch, config.query_batch):
                piece = {key: value[start : start + config.query_batch] for key, value in observation.items()}
                parts.append(predictor(piece))  # type: ignore[operator]
            return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])

    def checked_chunk_fn(observation: Any) -> torch.Tensor:
        return torch.from_numpy(_checked(chunk_fn(observation), batch, config.t_pred, label))

    rollout = ChunkRollout(
        checked_chunk_fn,
        config.t_obs,
        config.t_pred,
        RolloutConfig(
            n_action_steps=1 if config.ensemble is not None else config.execute,
            temporal_ensemble_coeff=config.ensemble,
        ),
    )
    rollout.reset()

    def distance_now(step: int) -> np.ndarray:
        paths[:, step] = [e.unwrapped.data.body("fingertip").xpos[:2] for e in envs]
        targets = np.array([e.unwrapped.data.body("target").xpos[:2] for e in envs])
        return np.linalg.norm(paths[:, step] - targets, axis=1)

    def snapshot(step: int) -> None:
        if step in strip_steps and display is not None:
            for i, row in enumerate(strip_rows):
                copy_state(envs[i], display)
                row.append(render_frame(display))

    blank = np.zeros((batch, config.image_size, config.image_size, 3), dtype=np.uint8)
    distances[:, 0] = distance_now(0)
    for step in range(steps):
        now["step"] = step
        snapshot(step)
        if predictor == "expert":
            setpoints = plans[:, step]
        else:
            observation: dict[str, np.ndarray] | None = None
            if camera is not None:
                frames = blank
                if step in frame_steps:
                    frames = np.empty_like(blank)
                    for i, env in enumerate(envs):
                        copy_state(env, camera)
                        frames[i] = render_frame(camera)
                observation = {IMAGE: frames}
                if uses_state:
                    observation[STATE] = np.stack([state_vector(e, tier.state_keys) for e in envs])
            setpoints = np.asarray(rollout.select_action(observation), dtype=np.float64)[:, :2]
        for env, tracker, setpoint in zip(envs, trackers, setpoints):
            base = env.unwrapped
            env.step(tracker.action(base.model, base.data, setpoint))
        distances[:, step + 1] = distance_now(step + 1)
    snapshot(steps)

    final, minimum = distances[:, -1], distances.min(axis=1)
    episodes = [
        {
            "seed": int(seed),
            "final_distance": float(f),
            "min_distance": float(m),
            "success": bool(f < config.success_radius),
            "success_strict": bool(f < config.strict_radius),
            "ever_within": bool(m < config.success_radius),
        }
        for seed, f, m in zip(config.seeds, final, minimum)
    ]
    result: dict[str, Any] = {
        "label": label,
        "settings": config.to_dict(),
        "success_rate": float(np.mean(final < config.success_radius)),
        "strict_success_rate": float(np.mean(final < config.strict_radius)),
        "ever_within_rate": float(np.mean(minimum < config.success_radius)),
        "median_final_distance": float(np.median(final)),
        "mean_final_distance": float(np.mean(final)),
        "episodes": episodes,
    }
    if record_paths:
        result["paths"] = paths
    if strip_path is not None and strip_rows:
        result["strip"] = save_strip(Path(strip_path), strip_rows)
    return result


def save_strip(path: Path, rows: list[list[np.ndarray]]) -> str | None:
    """One row per episode, frames left to right, 2× upscaled (nearest), as a PNG."""
    try:
        from PIL import Image
    except ImportError:
        warnings.warn(f"strip {path}: Pillow is not installed, no strip written", stacklevel=3)
        return None
    grid = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    image = Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return str(path)


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    tier: str | None = None,
    episodes: int = 200,
    seed: int = DEFAULT_EVAL_SEED,
    execute: int = 4,
    ensemble: float | None = None,
    tracker: str = "inverse_dynamics",
    references: bool = True,
    strip_path: str | Path | None = None,
    demos: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Closed loop of a checkpoint trained on ``rvperceiver sim generate`` setpoint demos (``sim eval``).

    The tier, image size and training seeds come from the training file's ``env_args``, so the policy sees frames
    like its training frames and no evaluation seed was a training seed; ``tier`` may name another tier with the
    same drawing options to test transfer, or is refused when it needs a low-dim observation the policy lacks.
    With ``references`` the expert, the oracle and the mean predictor run on the same seeds; ``demos`` (held-out
    demos) adds ``offline``: the checkpoint's offline metrics on them (``rvperceiver eval``'s record).
    """
    from rvperceiver.data.formats import open_episodes
    from rvperceiver.data.windows import WindowDataset
    from rvperceiver.errors import DataError
    from rvperceiver.sim.generate import recorded_tier, training_seed_range
    from rvperceiver.train.checkpoint import load_policy

    policy, config = load_policy(checkpoint, device=device)
    if config.torch_threads is not None:  # as the run was trained: on shared cores fewer threads can be faster
        torch.set_num_threads(config.torch_threads)
    # Streaming: only env_args and the targets (for the mean chunk) are read here, never the frames.
    training = open_episodes(config.data.path, image_key=config.data.image_key, ee_key=config.data.ee_key, streaming=True)
    env_args = training.meta.get("env_args") or {}
    info = env_args.get("rvperceiver") or {}
    trained = recorded_tier(env_args)
    if trained is None:
        raise DataError(
            f"{config.data.path}: no rvperceiver.tier in env_args; this closed loop needs setpoint demos made by "
            f"`rvperceiver sim generate`; regenerate the demos with it and retrain"
        )
    chosen = trained if tier is None else get_tier(tier, trained.target_scale)
    uses_state = getattr(policy, "state_shape", None) is not None
    if chosen.low_dim and not uses_state:
        raise InputError(
            f"tier {chosen.name!r} gives the policy low-dim observations {list(chosen.state_keys)}, but this policy "
            f"was trained without one (data.state_keys is empty); train with data.state_keys={list(chosen.state_keys)}"
        )
    if uses_state and tuple(config.data.state_keys) != chosen.state_keys:
        raise InputError(
            f"tier {chosen.name!r} gives the policy observation.state = {list(chosen.state_keys)}; this policy was "
            f"trained on data.state_keys={list(config.data.state_keys)}"
        )
    loop_config = ClosedLoopConfig(
        tier=chosen.name,
        target_scale=chosen.target_scale,
        episodes=episodes,
        seed=seed,
        t_obs=config.data.t_obs,
        t_pred=config.data.t_pred,
        execute=execute,
        ensemble=ensemble,
        image_size=int(env_args["env_kwargs"]["width"]),
        episode_steps=int(info.get("episode_steps", EPISODE_STEPS)),
        tracker=tracker,
    )
    train_seeds = training_seed_range(env_args)
    result = run_closed_loop(policy_chunk_fn(policy), loop_config, train_seeds=train_seeds, strip_path=strip_path)
    result["checkpoint"] = str(checkpoint)
    if references:
        windows = WindowDataset(list(training), config.data.t_obs, config.data.t_pred, skip_short=True)
        mean_chunk = windows.targets_array().astype(np.float64).mean(axis=0)
        result["references"] = {
            "expert": run_closed_loop("expert", loop_config, train_seeds=train_seeds, label="expert"),
            "oracle": run_closed_loop("oracle", loop_config, train_seeds=train_seeds, label="oracle"),
            "mean_predictor": run_closed_loop(constant_chunk_fn(mean_chunk), loop_config, train_seeds=train_seeds,
                                              label="mean predictor"),
        }
    if demos is not None:
        from rvperceiver.train.run import evaluate_checkpoint as offline_metrics

        result["offline"] = offline_metrics(checkpoint, demos, device=device, progress=progress, loaded=(policy, config))
    return result
