"""ChunkRollout: start-of-episode padding, history, receding horizon, chunk-end holding, temporal ensembling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.rollout import ChunkRollout, RolloutConfig
from rvperceiver.observation import IMAGE, STATE

T_OBS, T_PRED = 3, 4


class _Recorder:
    """predict_chunk that records its inputs; chunk[k] = [call index, k] so every output names its origin."""

    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []

    def __call__(self, batch):
        self.batches.append(batch)
        n = len(self.batches) - 1
        batch_size = batch[IMAGE].shape[0]
        chunk = torch.stack([torch.tensor([float(n), float(k)]) for k in range(T_PRED)])
        return chunk.expand(batch_size, T_PRED, 2).clone()


def _frame(value: int) -> np.ndarray:
    return np.full((2, 2, 3), value, dtype=np.uint8)


def test_history_is_padded_with_the_first_frame_then_slides():
    recorder = _Recorder()
    rollout = ChunkRollout(recorder, T_OBS, T_PRED, RolloutConfig(n_action_steps=1))
    for value in (10, 11, 12, 13):
        rollout.select_action({IMAGE: _frame(value)})
    firsts = [batch[IMAGE][0, :, 0, 0, 0].tolist() for batch in recorder.batches]
    assert firsts == [[10, 10, 10], [10, 10, 11], [10, 11, 12], [11, 12, 13]]
    assert recorder.batches[0][IMAGE].dtype == torch.uint8 and recorder.batches[0][IMAGE].shape == (1, T_OBS, 2, 2, 3)
    rollout.reset()
    rollout.select_action(_frame(50))  # a bare frame stands for {observation.image: frame}
    assert recorder.batches[-1][IMAGE][0, :, 0, 0, 0].tolist() == [50, 50, 50]


def test_receding_horizon_executes_n_steps_of_each_chunk():
    recorder = _Recorder()
    rollout = ChunkRollout(recorder, T_OBS, T_PRED, RolloutConfig(n_action_steps=3))
    actions = [rollout.select_action(_frame(i)).tolist() for i in range(7)]
    assert actions == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [2, 0]]
    whole = ChunkRollout(_Recorder(), T_OBS, T_PRED)  # n_action_steps None = the whole chunk
    assert [whole.select_action(_frame(i))[1].item() for i in range(5)] == [0, 1, 2, 3, 0]


def test_chunk_end_holds_the_last_waypoint():
    rollout = ChunkRollout(_Recorder(), T_OBS, T_PRED, RolloutConfig(n_action_steps=2, setpoint="chunk_end"))
    assert [rollout.select_action(_frame(i)).tolist() for i in range(4)] == [[0, 3], [0, 3], [1, 3], [1, 3]]


def test_temporal_ensembling_averages_every_chunk_covering_the_step():
    coeff = 0.5
    chunks = [torch.randn(1, T_PRED, 2) for _ in range(6)]
    calls = iter(chunks)
    rollout = ChunkRollout(lambda batch: next(calls), T_OBS, T_PRED, RolloutConfig(temporal_ensemble_coeff=coeff))
    for step in range(6):
        action = rollout.select_action(_frame(step))
        covering = [(s, chunks[s][0, step - s]) for s in range(step + 1) if step - s < T_PRED]
        weights = [math.exp(-coeff * i) for i in range(len(covering))]  # i = 0 is the oldest chunk
        expected = sum(w * a for w, (_, a) in zip(weights, covering)) / sum(weights)
        assert torch.allclose(action, expected), step


def test_batched_observations_and_low_dim_state():
    recorder = _Recorder()
    rollout = ChunkRollout(recorder, T_OBS, T_PRED, RolloutConfig(n_action_steps=1))
    image = np.stack([_frame(1), _frame(2)])
    state = np.array([[0.5, 1.0], [1.5, 2.0]], dtype=np.float32)
    action = rollout.select_action({IMAGE: image, STATE: state})
    assert action.shape == (2, 2)
    batch = recorder.batches[0]
    assert batch[STATE].shape == (2, T_OBS, 2) and torch.equal(batch[STATE][:, 0], torch.from_numpy(state))


def test_observations_are_copied_so_a_reused_env_buffer_cannot_change_the_history():
    recorder = _Recorder()
    rollout = ChunkRollout(recorder, T_OBS, T_PRED, RolloutConfig(n_action_steps=1))
    buffer = _frame(1)
    rollout.select_action({IMAGE: buffer})
    buffer[:] = 99
    rollout.select_action({IMAGE: buffer})
    assert recorder.batches[1][IMAGE][0, :, 0, 0, 0].tolist() == [1, 1, 99]


def test_bad_settings_and_observations_are_refused():
    with pytest.raises(ConfigError, match="n_action_steps"):
        RolloutConfig(n_action_steps=0)
    with pytest.raises(ConfigError, match="setpoint"):
        RolloutConfig(setpoint="far")
    with pytest.raises(ConfigError, match="temporal_ensemble_coeff predicts every step"):
        RolloutConfig(n_action_steps=2, temporal_ensemble_coeff=0.1)
    with pytest.raises(ConfigError, match="only t_pred = 4"):
        ChunkRollout(_Recorder(), T_OBS, T_PRED, RolloutConfig(n_action_steps=5))
    rollout = ChunkRollout(_Recorder(), T_OBS, T_PRED)
    with pytest.raises(InputError, match="expected 'observation.image'"):
        rollout.select_action({"observation.images.top": _frame(1)})
    with pytest.raises(InputError, match=r"one frame \[H, W, C\]"):
        rollout.select_action({IMAGE: np.zeros((4, 4), dtype=np.uint8)})
    bad = ChunkRollout(lambda batch: torch.zeros(1, 2, 2), T_OBS, T_PRED)
    with pytest.raises(InputError, match="t_pred=4"):
        bad.select_action(_frame(0))
