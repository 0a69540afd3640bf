import os

# Offscreen MuJoCo rendering: EGL by default (CI installs the Mesa EGL packages); OSMesa works too.
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest
import torch


@pytest.fixture()
def state_taking_cnn(monkeypatch):
    """Make the Policy build its CNN as a backbone that takes low-dim observations (a linear read-out of the
    state added to the CNN's output), so the observation plumbing is testable whatever the real backbones do."""
    import rvperceiver.model.policy as policy_module
    from rvperceiver.model.cnn import SpatialSoftmaxCNN

    class StateCNN(SpatialSoftmaxCNN):
        takes_state = True

        def __init__(self, config, input_channels, grid_shape, state_shape) -> None:
            super().__init__(config, input_channels, grid_shape)
            self.output_shape = (config.output_steps, config.output_channels)
            self.state_head = torch.nn.Linear(state_shape[0] * state_shape[1], config.output_steps * config.output_channels)
            self.seen: list[torch.Tensor] = []

        def forward(self, tokens, state):
            self.seen.append(state)
            return super().forward(tokens) + self.state_head(state.flatten(1)).view(-1, *self.output_shape)

    monkeypatch.setattr(policy_module, "SpatialSoftmaxCNN", StateCNN)
    return StateCNN
