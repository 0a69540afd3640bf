"""Closed-loop and offline evaluation of end-effector-trajectory policies on Reacher-v5.

A policy here is anything that maps the last ``t_obs`` frames (uint8 ``[t_obs, H, W, C]``) to ``t_pred`` future
fingertip positions in metres (``[t_pred, D]``, D >= 2): ``chunk[k]`` is the position expected ``k + 1`` steps
after the newest frame, exactly the targets the training windows use. The scripted expert's controller
(:meth:`ReacherExpert.act_towards`) turns a predicted position into torques. The evaluation is an ordinary
environment loop over ``reset()`` / ``select_action()`` (see ``rvperceiver.model.rollout``): the policy keeps its
own frame history and chunk queue and predicts a new chunk every ``replan_every`` steps (action chunking), or as
a ``RolloutConfig`` says (temporal ensembling).

Which predicted position the controller heads for matters more than one would guess. The controller is a
position-error PD, so aiming at the waypoint for *this* step (one step ahead) produces tiny torques and the arm
lags ever further behind: even a perfect predictor, one that returns the expert's true future from the current
state, then ends within 1 cm on only 42% of the seeds 100000–100049 (t_pred 8, replan 4). Aiming at the last
waypoint of the chunk (where the policy says the arm is going) lets that perfect predictor reach 84% (90% when
re-planning every step); its remaining failures are the arm folding into its elbow limit. So ``aim="chunk_end"``
is the default and ``aim="step"`` is kept for comparison; ``oracle_reference=True`` reports that perfect-predictor
ceiling for the chosen settings next to the policy's score, so a success rate can be read against it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from tqdm.auto import tqdm

from rvperceiver.data.episodes import Episode
from rvperceiver.data.index import SampleIndex
from rvperceiver.errors import InputError
from rvperceiver.model.rollout import ChunkRollout, RolloutConfig
from rvperceiver.observation import IMAGE
from rvperceiver.sim.closed_loop import check_seed_overlap
from rvperceiver.sim.expert import ReacherExpert
from rvperceiver.sim.reacher import (
    EPISODE_STEPS,
    FINGERTIP_BODY,
    SUCCESS_RADIUS_M,
    fingertip_target_distance,
    make_reacher,
    render_frame,
    target_position,
)

PolicyFn = Callable[[np.ndarray], np.ndarray]
"""frames uint8 ``[t_obs, H, W, C]`` -> waypoints ``[t_pred, D]`` in metres."""
Rollout = tuple[float, list[np.ndarray], list[np.ndarray]]
"""One episode: final distance (m), the rendered frames (empty when not rendered) and the setpoint (world xy)
the controller was given at each step."""

AIMS = ("chunk_end", "step")
DEFAULT_EVAL_SEED = 100_000


def policy_fn_from_policy(policy: torch.nn.Module, device: str | torch.device | None = None) -> PolicyFn:
    """Wrap an ``rvperceiver.model.policy.Policy`` (anything with ``predict([1, T, H, W, C]) -> [1, T_pred, D]``).

    ``device`` defaults to the device of the policy's first parameter. The policy is put in eval mode.
    """
    if not hasattr(policy, "predict"):
        raise InputError(f"policy_fn_from_policy: expected an object with a predict() method, got {type(policy).__name__}")
    if device is None:
        first = next(iter(policy.parameters()), None) if hasattr(policy, "parameters") else None
        device = first.device if first is not None else torch.device("cpu")
    target_device = torch.device(device)
    if hasattr(policy, "eval"):
        policy.eval()

    def run(frames: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(frames)).unsqueeze(0).to(target_device)
        with torch.no_grad():
            prediction = policy.predict(batch)
        return prediction[0].detach().float().cpu().numpy()

    return run


def constant_policy_fn(mean_traj: np.ndarray) -> PolicyFn:
    """A policy that ignores the frames and always returns ``mean_traj`` (the mean-trajectory predictor)."""
    trajectory = np.asarray(mean_traj, dtype=np.float64)
    if trajectory.ndim != 2 or trajectory.shape[1] < 2 or not np.all(np.isfinite(trajectory)):
        raise InputError(
            f"constant_policy_fn: mean_traj must be a finite [t_pred, D>=2] array, got shape {trajectory.shape}"
        )
    return lambda frames: trajectory.copy()


def target_windows(episodes: Sequence[Episode], t_obs: int, t_pred: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Every ``(frames [t_obs, H, W, C], ee [t_pred, D])`` window inside an episode (never across two), as the
    training data's :class:`SampleIndex` cuts them; episodes too short for a window are skipped."""
    usable = [episode for episode in episodes if episode.length >= t_obs + t_pred]
    if not usable:
        return
    for episode_id, start in SampleIndex.build([e.length for e in usable], t_obs, t_pred).pairs:
        episode = usable[episode_id]
        yield (
            episode.frames[start : start + t_obs],
            episode.ee[start + t_obs : start + t_obs + t_pred],
        )


def mean_target_trajectory(episodes: Sequence[Episode], t_obs: int, t_pred: int) -> np.ndarray:
    """The mean target chunk over all windows of ``episodes`` (what a collapsed policy would predict)."""
    _check_horizons(t_obs, t_pred)
    targets = [target for _, target in target_windows(episodes, t_obs, t_pred)]
    if not targets:
        raise InputError(f"mean_target_trajectory: no episode is longer than t_obs + t_pred - 1 = {t_obs + t_pred - 1}")
    return np.mean(np.stack(targets).astype(np.float64), axis=0)


def offline_ee_error(
    policy_fn: PolicyFn, episodes: Sequence[Episode], t_obs: int, t_pred: int, progress: bool = False
) -> float:
    """Mean Euclidean end-effector error (metres) over every step of every window of ``episodes``.

    Use held-out demos; the policy sees the recorded frames, so no error compounds (unlike closed loop).
    ``progress`` shows a bar over the windows.
    """
    _check_horizons(t_obs, t_pred)
    errors = []
    windows = sum(max(0, e.length - t_obs - t_pred + 1) for e in episodes)
    for frames, target in tqdm(target_windows(episodes, t_obs, t_pred), desc="offline EE error", unit="window",
                               total=windows, disable=not progress):
        prediction = _checked_chunk(policy_fn(frames), t_pred, "offline_ee_error")
        if prediction.shape[1] != target.shape[1]:
            raise InputError(
                f"offline_ee_error: policy_fn returned width {prediction.shape[1]}, the episodes' ee has width "
                f"{target.shape[1]}"
            )
        errors.append(np.linalg.norm(prediction - target, axis=1))
    if not errors:
        raise InputError(f"offline_ee_error: no episode is longer than t_obs + t_pred - 1 = {t_obs + t_pred - 1}")
    return float(np.mean(np.concatenate(errors)))


def _check_horizons(t_obs: int, t_pred: int) -> None:
    for name, value in (("t_obs", t_obs), ("t_pred", t_pred)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name} must be an int >= 1, got {value!r}")


def _checked_chunk(output: Any, t_pred: int, where: str) -> np.ndarray:
    chunk = np.asarray(output, dtype=np.float64)
    if chunk.ndim != 2 or chunk.shape[0] != t_pred or chunk.shape[1] < 2:
        raise InputError(f"{where}: policy_fn must return [t_pred={t_pred}, D>=2] waypoints, got shape {chunk.shape}")
    if not np.all(np.isfinite(chunk)):
        raise InputError(f"{where}: policy_fn returned NaN/Inf waypoints")
    return chunk


class _ExpertFutureOracle:
    """The perfect predictor: the expert's own next ``t_pred`` fingertip positions, simulated on a scratch copy."""

    def __init__(self, env: gym.Env, expert: ReacherExpert, t_pred: int) -> None:
        self.env, self.expert, self.t_pred = env, expert, t_pred

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        base = self.env.unwrapped
        model, scratch = base.model, copy.copy(base.data)
        goal = target_position(self.env)[:2]
        chunk = np.empty((self.t_pred, 3))
        for k in range(self.t_pred):
            scratch.ctrl[:] = self.expert.action_for(model, scratch, goal)
            # Same stepping as gymnasium's MujocoEnv.do_simulation.
            mujoco.mj_step(model, scratch, nstep=base.frame_skip)
            mujoco.mj_rnePostConstraint(model, scratch)
            chunk[k] = scratch.body(FINGERTIP_BODY).xpos
        return chunk


def _summary(distances: Sequence[float], seeds: range, success_radius: float) -> dict[str, Any]:
    values = np.asarray(distances, dtype=np.float64)
    return {
        "success_rate": float(np.mean(values < success_radius)),
        "mean_final_distance": float(values.mean()),
        "median_final_distance": float(np.median(values)),
        "episodes": [
            {"seed": int(s), "final_distance": float(d), "success": bool(d < success_radius)}
            for s, d in zip(seeds, values)
        ],
    }


def closed_loop_eval(
    policy_fn: PolicyFn | torch.nn.Module,
    n_episodes: int = 50,
    seed: int = DEFAULT_EVAL_SEED,
    t_obs: int = 2,
    t_pred: int = 8,
    replan_every: int = 4,
    image_size: int = 64,
    *,
    train_seeds: Iterable[int] | None = None,
    aim: str = "chunk_end",
    expert_reference: bool = True,
    oracle_reference: bool = False,
    mean_trajectory: np.ndarray | None = None,
    target_render_scale: float = 1.0,
    episode_steps: int = EPISODE_STEPS,
    success_radius: float = SUCCESS_RADIUS_M,
    controller: ReacherExpert | None = None,
    save_strip: str | Path | None = None,
    strip_episodes: int = 4,
    progress: bool = False,
    rollout: RolloutConfig | None = None,
) -> dict[str, Any]:
    """Roll ``policy_fn`` out on env seeds ``seed … seed+n_episodes-1`` and score the final reach.

    Every agent (the policy and each reference) runs in the same ordinary loop: ``reset()`` at the episode start,
    then ``select_action(observation)`` once per step, its setpoint given to ``controller``. ``policy_fn`` is a
    ``Policy`` (driven through its own ``select_action``), another module with ``predict`` (wrapped with
    :func:`policy_fn_from_policy`) or a chunk function; the latter two run in a :class:`ChunkRollout`. The chunks
    are executed as ``rollout`` says; None = ``replan_every`` steps per chunk, aiming as ``aim`` says
    (``chunk_end`` holds the chunk's last waypoint, ``step`` takes the waypoint of each step). Success means the
    fingertip ends within ``success_radius`` (1 cm) of the target after ``episode_steps`` steps. Render settings
    (``image_size``, ``target_render_scale``) must match the training data. ``train_seeds`` (e.g.
    ``range(0, 200)``) is checked for overlap with the evaluation seeds.

    Returns ``success_rate``, ``mean_final_distance``, ``median_final_distance``, ``episodes`` (per seed), the
    ``settings``, and, when asked for, the same summary under ``expert`` (the scripted expert on the same seeds),
    ``oracle`` (the perfect trajectory predictor through the same controller and re-planning) and
    ``mean_trajectory`` (a constant ``mean_trajectory`` chunk, see :func:`mean_target_trajectory`).
    """
    _check_horizons(t_obs, t_pred)
    for name, value, minimum in (("n_episodes", n_episodes, 1), ("seed", seed, 0), ("episode_steps", episode_steps, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InputError(f"closed_loop_eval: {name} must be an int >= {minimum}, got {value!r}")
    if isinstance(replan_every, bool) or not isinstance(replan_every, (int, np.integer)) or not 1 <= replan_every <= t_pred:
        raise InputError(f"closed_loop_eval: replan_every must be an int in 1..t_pred={t_pred}, got {replan_every!r}")
    if aim not in AIMS:
        raise InputError(f"closed_loop_eval: aim must be one of {AIMS}, got {aim!r}")
    if not success_radius > 0:
        raise InputError(f"closed_loop_eval: success_radius must be > 0, got {success_radius!r}")
    eval_seeds = range(int(seed), int(seed) + int(n_episodes))
    check_seed_overlap(eval_seeds, train_seeds)
    if rollout is None:
        rollout = RolloutConfig(n_action_steps=int(replan_every), setpoint="chunk_end" if aim == "chunk_end" else "next")
    elif not isinstance(rollout, RolloutConfig):
        raise InputError(f"closed_loop_eval: rollout must be a RolloutConfig or None, got {type(rollout).__name__}")
    rollout.steps_per_chunk(t_pred)
    controller = controller or ReacherExpert()

    env = make_reacher(image_size=image_size, target_render_scale=target_render_scale)
    restore_rollout = None
    try:
        # Every agent below is driven by the same loop (_run_episode): reset, then one select_action per step.
        if callable(getattr(policy_fn, "select_action", None)) and callable(getattr(policy_fn, "set_rollout", None)):
            restore_rollout = (policy_fn, policy_fn.config.rollout)
            policy_fn.set_rollout(rollout)
            policy_fn.eval()
            agent: Any = policy_fn
        else:
            if isinstance(policy_fn, torch.nn.Module):
                policy_fn = policy_fn_from_policy(policy_fn)
            agent = _chunk_agent(policy_fn, t_obs, t_pred, rollout, "closed_loop_eval")
        agents: dict[str, tuple[Any, bool]] = {"policy": (agent, True)}
        if mean_trajectory is not None:
            constant = constant_policy_fn(mean_trajectory)
            _checked_chunk(constant(np.empty(0)), t_pred, "closed_loop_eval(mean_trajectory)")
            agents["mean_trajectory"] = (_chunk_agent(constant, t_obs, t_pred, rollout, "closed_loop_eval"), False)
        if oracle_reference:
            oracle = _ExpertFutureOracle(env, ReacherExpert(), t_pred)
            agents["oracle"] = (_chunk_agent(oracle, t_obs, t_pred, rollout, "closed_loop_eval"), False)
        if expert_reference:
            agents["expert"] = (_TrueTargetAgent(env), False)

        results: dict[str, Any] = {}
        strips: list[tuple[int, Rollout]] = []
        for label, (runner, observe) in agents.items():
            distances = []
            for env_seed in tqdm(eval_seeds, desc=f"closed loop ({label})", unit="ep", disable=not progress):
                episode = _run_episode(env, env_seed, runner, observe, episode_steps, controller)
                distances.append(episode[0])
                if label == "policy" and save_strip is not None and len(strips) < strip_episodes:
                    strips.append((env_seed, episode))
            results[label] = _summary(distances, eval_seeds, success_radius)
    finally:
        env.close()
        if restore_rollout is not None:
            restore_rollout[0].set_rollout(restore_rollout[1])

    report = dict(results.pop("policy"))
    report["n_episodes"] = int(n_episodes)
    report["seeds"] = [eval_seeds.start, eval_seeds.stop]
    report["settings"] = {
        "t_obs": t_obs,
        "t_pred": t_pred,
        "replan_every": replan_every,
        "aim": aim,
        "rollout": dataclasses.asdict(rollout),
        "image_size": image_size,
        "target_render_scale": target_render_scale,
        "episode_steps": episode_steps,
        "success_radius": success_radius,
        "controller": {"kp": controller.kp, "kd": controller.kd, "damping": controller.damping},
    }
    report.update(results)
    if save_strip is not None and strips:
        report["strip"] = _save_strip(Path(save_strip), strips, report)
    return report


class _TrueTargetAgent:
    """The scripted expert as an agent: its setpoint is always the true target (what the demos were made with)."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env

    def reset(self) -> None:
        pass

    def select_action(self, observation: Any) -> np.ndarray:
        return target_position(self.env)[:2]


def _chunk_agent(fn: PolicyFn, t_obs: int, t_pred: int, rollout: RolloutConfig, where: str) -> ChunkRollout:
    """A chunk function ``frames [t_obs, H, W, C] -> [t_pred, D]`` run step by step like a ``Policy``."""

    def predict_chunk(batch: dict[str, torch.Tensor] | None) -> torch.Tensor:
        frames = batch[IMAGE][0].numpy() if batch is not None else np.empty(0)
        return torch.from_numpy(_checked_chunk(fn(frames), t_pred, where)).unsqueeze(0)

    return ChunkRollout(predict_chunk, t_obs, t_pred, rollout)


def _goal(setpoint: Any) -> np.ndarray:
    if isinstance(setpoint, torch.Tensor):
        setpoint = setpoint.detach().cpu().numpy()
    goal = np.asarray(setpoint, dtype=np.float64).reshape(-1)
    if goal.shape[0] < 2:
        raise InputError(f"closed_loop_eval: the policy's setpoint must hold >= 2 coordinates, got shape {goal.shape}")
    if not np.all(np.isfinite(goal)):
        raise InputError("closed_loop_eval: the policy returned NaN/Inf waypoints")
    return goal[:2]


def _run_episode(
    env: gym.Env, env_seed: int, agent: Any, observe: bool, episode_steps: int, controller: ReacherExpert
) -> Rollout:
    """One episode of the ordinary loop: ``agent.reset()``, then per step an observation (the rendered frame,
    when ``observe``), ``agent.select_action`` and the controller's torques towards the setpoint."""
    env.reset(seed=env_seed)
    agent.reset()
    frames: list[np.ndarray] = []
    goals: list[np.ndarray] = []
    for _ in range(episode_steps):
        observation = None
        if observe:
            frames.append(render_frame(env))
            observation = {IMAGE: frames[-1]}
        goals.append(_goal(agent.select_action(observation)))
        env.step(controller.act_towards(env, goals[-1]))
    if observe:
        frames.append(render_frame(env))  # the final state, shown last in strips
    return fingertip_target_distance(env), frames, goals


def _save_strip(path: Path, rollouts: list[tuple[int, Rollout]], report: dict[str, Any], columns: int = 8) -> str:
    """A labelled picture of the first rollouts (see :func:`rvperceiver.plotting.plot_rollout_strip`).

    ``columns`` frames per rollout, evenly spaced from the first to the final one, each with the setpoint the
    controller was following at that step (the policy's predicted waypoint; the final frame shows the last one) and
    the target, read back by resetting the env with the seed.
    """
    from rvperceiver.plotting import plot_rollout_strip

    settings = report["settings"]
    by_seed = {e["seed"]: e for e in report["episodes"]}
    rows = []
    for env_seed, (distance, frames, goals) in rollouts:
        env = make_reacher(image_size=settings["image_size"], seed=env_seed,
                           target_render_scale=settings["target_render_scale"])
        try:
            target = target_position(env)[:2]
        finally:
            env.close()
        picks = np.linspace(0, len(frames) - 1, num=min(columns, len(frames))).round().astype(int)
        rows.append({
            "seed": env_seed,
            "success": by_seed[env_seed]["success"],
            "final_distance": distance,
            "target": target,
            "frames": [frames[i] for i in picks],
            "steps": picks.tolist(),
            "goals": np.stack([goals[min(int(i), len(goals) - 1)] for i in picks]),
        })
    plot_rollout_strip(rows, path, success_radius=settings["success_radius"])
    return str(path)
