"""The checks of whether a BC policy uses its frames: the start-window error and the state-only reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvperceiver.data.episodes import Episode
from rvperceiver.data.windows import WindowDataset
from rvperceiver.errors import DataError
from rvperceiver.experiments.bc_references import (
    constant_predictor,
    fit_state_only,
    policy_predictor,
    predictor_nmse,
    start_items,
    start_window_error,
)

T_OBS, T_PRED, LENGTH = 1, 4, 12


def _episodes(count: int, seed: int = 0) -> list[Episode]:
    """A point moving at a constant velocity drawn per episode: the state (position, velocity) determines every
    future target; the frames carry nothing."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(count):
        start, velocity = rng.uniform(-0.1, 0.1, 2), rng.uniform(-0.02, 0.02, 2)
        position = start + np.arange(LENGTH)[:, None] * velocity
        state = np.concatenate([position, np.broadcast_to(velocity, position.shape)], axis=1).astype(np.float32)
        ee = np.concatenate([position, np.zeros((LENGTH, 1))], axis=1).astype(np.float32)
        frames = np.zeros((LENGTH, 8, 8, 3), dtype=np.uint8)
        episodes.append(Episode(f"demo_{i}", frames, ee, extras={"pos": state}))
    return episodes


def _dataset(count: int = 12, seed: int = 0) -> WindowDataset:
    return WindowDataset(_episodes(count, seed), T_OBS, T_PRED, state_keys=("pos",))


def test_start_window_error_reads_only_the_first_window_of_each_episode() -> None:
    dataset = _dataset(5)
    items = start_items(dataset)
    assert len(items) == 5 and all(dataset.index.pairs[i][1] == 0 for i in items)
    truth = {tuple(dataset[i][0]["observation.state"].reshape(-1).tolist()): dataset[i][1] for i in items}

    def oracle(batch):
        return torch.stack([truth[tuple(s.reshape(-1).tolist())] for s in batch["observation.state"]]).numpy()

    assert start_window_error(oracle, dataset) == pytest.approx(0.0, abs=1e-7)
    shifted = lambda batch: oracle(batch) + np.array([0.03, 0.04, 0.0])  # noqa: E731 - 5 cm off in the plane
    assert start_window_error(shifted, dataset) == pytest.approx(0.05, rel=1e-5)


def test_the_state_only_mlp_learns_a_target_the_state_determines_and_the_mean_does_not() -> None:
    train, valid = _dataset(48, seed=0), _dataset(8, seed=1)
    model = fit_state_only(train, seed=0, steps=600)
    assert predictor_nmse(policy_predictor(model), valid) < 0.2
    mean = constant_predictor(train.targets_array().mean(axis=0))
    assert predictor_nmse(mean, valid) > 0.8
    assert start_window_error(policy_predictor(model), valid) < start_window_error(mean, valid)


def test_the_state_only_reference_needs_low_dim_observations() -> None:
    with pytest.raises(DataError, match="state_keys"):
        fit_state_only(WindowDataset(_episodes(3), T_OBS, T_PRED), steps=1)
