"""Two checks of whether a behaviour-cloning policy uses its frames at all.

On a tier that gives the joint state beside the frame (``arm-hidden``), the state predicts most of a setpoint
chunk: an arm in motion keeps moving along its plan. A low validation NMSE then says little. Measured on the
study's arm-hidden demos, an MLP on the state alone reached NMSE 0.008, lower than every image model, and its
closed loop sat on the mean predictor's floor. Two figures tell the difference:

- the **state-only reference**: :func:`fit_state_only`, a small MLP from the observed joint state to the chunk,
  which never sees a frame;
- the **start-window error**: :func:`start_window_error`, the distance between the predicted and the demonstrated
  *last* setpoint of the chunk on the first window of every episode, where the arm is at rest and only the frame
  says where it will go. A model no better there than the state-only reference has not used the frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rvperceiver.errors import DataError
from rvperceiver.observation import STATE

ChunkPredictor = Callable[[Any], np.ndarray]
"""A batch of window inputs (a tensor of frames, or a mapping with ``observation.state``) → chunks ``[B, t_pred, D]``."""


def start_items(dataset: Any) -> list[int]:
    """Indices of the windows of ``dataset`` (a :class:`WindowDataset`) that start at an episode's first step."""
    items = [i for i, (_, begin) in enumerate(dataset.index.pairs) if begin == 0]
    if not items:
        raise DataError("start_window_error: no window starts at an episode's first step")
    return items


def _stack(inputs: list[Any]) -> Any:
    if isinstance(inputs[0], dict):
        return {key: torch.stack([x[key] for x in inputs]) for key in inputs[0]}
    return torch.stack(inputs)


def start_window_error(predict: ChunkPredictor, dataset: Any, batch_size: int = 64) -> float:
    """Mean planar distance (metres) between the predicted and the demonstrated last setpoint of the chunk, over
    the first window of every episode of ``dataset``."""
    items = start_items(dataset)
    errors = []
    for first in range(0, len(items), batch_size):
        pairs = [dataset[i] for i in items[first : first + batch_size]]
        predicted = np.asarray(predict(_stack([x for x, _ in pairs])), dtype=np.float64)
        demonstrated = torch.stack([y for _, y in pairs]).double().numpy()
        errors.append(np.linalg.norm(predicted[:, -1, :2] - demonstrated[:, -1, :2], axis=1))
    return float(np.mean(np.concatenate(errors)))


def _batch_length(batch: Any) -> int:
    return len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch)


def constant_predictor(chunk: np.ndarray) -> ChunkPredictor:
    """The same chunk for every input (the mean predictor)."""
    fixed = np.asarray(chunk, dtype=np.float64)
    return lambda batch: np.broadcast_to(fixed, (_batch_length(batch), *fixed.shape))


def predictor_nmse(predict: ChunkPredictor, dataset: Any, batch_size: int = 256) -> float:
    """The trainer's validation NMSE (:class:`MetricAccumulator`, target units) of ``predict`` on every window."""
    from rvperceiver.train.metrics import MetricAccumulator

    accumulator = MetricAccumulator(int(np.prod(dataset.target_shape)))
    for first in range(0, len(dataset), batch_size):
        pairs = [dataset[i] for i in range(first, min(len(dataset), first + batch_size))]
        target = torch.stack([y for _, y in pairs]).double().reshape(len(pairs), -1)
        predicted = np.asarray(predict(_stack([x for x, _ in pairs])), dtype=np.float64)
        prediction = torch.from_numpy(predicted.reshape(len(pairs), -1))
        accumulator.update(prediction, target, prediction, target)
    return accumulator.compute().nmse


def policy_predictor(policy: torch.nn.Module) -> ChunkPredictor:
    """A ``Policy``'s ``predict_chunk`` as a :data:`ChunkPredictor`."""
    return lambda batch: policy.predict_chunk(batch).detach().double().cpu().numpy()


class StateOnlyMLP(torch.nn.Module):
    """Observed joint state ``[B, t_obs, S]`` → chunk ``[B, t_pred, D]``; inputs and outputs z-scored with the
    training windows' statistics (kept as buffers)."""

    def __init__(self, state_shape: tuple[int, int], target_shape: tuple[int, int], width: int = 128) -> None:
        super().__init__()
        inputs, outputs = int(np.prod(state_shape)), int(np.prod(target_shape))
        self.target_shape = tuple(target_shape)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(inputs, width), torch.nn.GELU(), torch.nn.Linear(width, width), torch.nn.GELU(),
            torch.nn.Linear(width, outputs),
        )
        for name, size in (("x_mean", inputs), ("x_std", inputs), ("y_mean", outputs), ("y_std", outputs)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        flat = state.reshape(len(state), -1).float()
        out = self.net((flat - self.x_mean) / self.x_std) * self.y_std + self.y_mean
        return out.reshape(len(state), *self.target_shape)

    def predict(self, batch: Any) -> np.ndarray:
        """A :data:`ChunkPredictor` (and a closed-loop chunk function): reads ``observation.state`` only."""
        state = batch[STATE] if isinstance(batch, dict) else batch
        with torch.no_grad():
            return self(torch.as_tensor(np.asarray(state))).double().numpy()


def window_states(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(observed states ``[n, t_obs, S]``, targets ``[n, t_pred, D]``) of every window of ``dataset``."""
    if getattr(dataset, "state_shape", None) is None:
        raise DataError("the state-only reference needs windows with low-dim observations (data.state_keys)")
    states = np.stack([np.asarray(dataset[i][0][STATE], dtype=np.float32) for i in range(len(dataset))])
    return states, dataset.targets_array().astype(np.float32)


def fit_state_only(dataset: Any, seed: int = 0, steps: int = 3000, batch_size: int = 256, lr: float = 1e-3) -> StateOnlyMLP:
    """Train a :class:`StateOnlyMLP` on the windows of ``dataset`` (plain Adam on the z-scored MSE)."""
    states, targets = window_states(dataset)
    torch.manual_seed(seed)
    model = StateOnlyMLP(states.shape[1:], targets.shape[1:])
    x = torch.from_numpy(states.reshape(len(states), -1))
    y = torch.from_numpy(targets.reshape(len(targets), -1))
    model.x_mean.copy_(x.mean(0))
    model.x_std.copy_(x.std(0) + 1e-6)
    model.y_mean.copy_(y.mean(0))
    model.y_std.copy_(y.std(0) + 1e-6)
    optimizer = torch.optim.Adam(model.net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = torch.randint(0, len(x), (batch_size,), generator=generator)
        prediction = model(x[rows]).reshape(batch_size, -1)
        loss = (((prediction - y[rows]) / model.y_std) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
