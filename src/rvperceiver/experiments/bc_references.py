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
from torch.utils.data import DataLoader, Subset

from rvperceiver.errors import DataError
from rvperceiver.observation import STATE
from rvperceiver.train.metrics import MetricAccumulator

ChunkPredictor = Callable[[Any], np.ndarray]
"""A batch of window inputs (a tensor of frames, or a mapping with ``observation.state``) → chunks ``[B, t_pred, D]``."""


def start_items(dataset: Any) -> list[int]:
    """Indices of the windows of ``dataset`` (a :class:`WindowDataset`) that start at an episode's first step."""
    items = [i for i, (_, begin) in enumerate(dataset.index.pairs) if begin == 0]
    if not items:
        raise DataError("start_window_error: no window starts at an episode's first step")
    return items


def _batches(dataset: Any, items: list[int] | None = None, batch_size: int = 256) -> Any:
    """(inputs, targets) batches of ``dataset`` (or of its ``items``) in order, as the trainer collates them."""
    chosen = dataset if items is None else Subset(dataset, items)
    return DataLoader(chosen, batch_size=batch_size, shuffle=False)


def start_window_error(predict: ChunkPredictor, dataset: Any) -> float:
    """Mean planar distance (metres) between the predicted and the demonstrated last setpoint of the chunk, over
    the first window of every episode of ``dataset``."""
    errors = []
    for inputs, targets in _batches(dataset, start_items(dataset)):
        predicted = np.asarray(predict(inputs), dtype=np.float64)
        errors.append(np.linalg.norm(predicted[:, -1, :2] - targets.double().numpy()[:, -1, :2], axis=1))
    return float(np.mean(np.concatenate(errors)))


def constant_predictor(chunk: np.ndarray) -> ChunkPredictor:
    """The same chunk for every input (the mean predictor)."""
    fixed = np.asarray(chunk, dtype=np.float64)
    return lambda batch: np.broadcast_to(fixed, (len(next(iter(batch.values())) if isinstance(batch, dict)
                                                     else batch), *fixed.shape))


def predictor_nmse(predict: ChunkPredictor, dataset: Any) -> float:
    """The trainer's validation NMSE (:class:`MetricAccumulator`, target units) of ``predict`` on every window."""
    accumulator = MetricAccumulator(int(np.prod(dataset.target_shape)))
    for inputs, targets in _batches(dataset):
        target = targets.double().reshape(len(targets), -1)
        prediction = torch.from_numpy(np.array(predict(inputs), dtype=np.float64).reshape(len(targets), -1))
        accumulator.update(prediction, target, prediction, target)
    return accumulator.compute().nmse


def policy_predictor(policy: torch.nn.Module) -> ChunkPredictor:
    """A ``Policy``'s (or a :class:`StateOnlyMLP`'s) ``predict_chunk`` as a :data:`ChunkPredictor`."""
    return lambda batch: policy.predict_chunk(batch).detach().double().cpu().numpy()


class StateOnlyMLP(torch.nn.Module):
    """Observed joint state ``[B, t_obs, S]`` → chunk ``[B, t_pred, D]``; inputs and outputs z-scored with the
    training windows' statistics (kept as buffers). It answers ``predict_chunk`` and ``state_shape`` like a
    ``Policy``, so the closed loop drives it through :func:`rvperceiver.sim.closed_loop.policy_chunk_fn`."""

    def __init__(self, state_shape: tuple[int, int], target_shape: tuple[int, int], width: int = 128) -> None:
        super().__init__()
        inputs, outputs = int(np.prod(state_shape)), int(np.prod(target_shape))
        self.state_shape = tuple(state_shape)
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

    @torch.no_grad()
    def predict_chunk(self, batch: Any) -> torch.Tensor:
        """Chunks for a batch of windows; reads ``observation.state`` only (the frames are ignored)."""
        state = batch[STATE] if isinstance(batch, dict) else batch
        return self(torch.as_tensor(np.asarray(state)))


def fit_state_only(dataset: Any, seed: int = 0, steps: int = 3000, batch_size: int = 256, lr: float = 1e-3) -> StateOnlyMLP:
    """Train a :class:`StateOnlyMLP` on the windows of ``dataset`` (plain Adam on the z-scored MSE)."""
    states = dataset.states_array()
    if states is None:
        raise DataError("the state-only reference needs windows with low-dim observations (data.state_keys)")
    targets = dataset.targets_array()
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
