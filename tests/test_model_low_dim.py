"""Low-dim observations beside frames in both backbones: the CNN concatenates them after the spatial softmax,
the Perceiver adds an MLP of them to every latent after the first cross-attend."""

from __future__ import annotations

import pytest
import torch

from rvperceiver.errors import InputError
from rvperceiver.model import CNNConfig, PerceiverConfig, PolicyConfig, build_policy
from rvperceiver.model.cnn import SpatialSoftmaxCNN
from rvperceiver.model.perceiver import PerceiverIO
from rvperceiver.views import ViewConfig

INPUT_SHAPE = (2, 8, 8, 3)
TARGET_SHAPE = (4, 3)
STATE_SHAPE = (2, 4)


def _policy(backbone: str):
    view = ViewConfig(token_mode="pixel" if backbone == "cnn" else "scalar", pre_norm="zscore")
    config = PolicyConfig(
        view=view,
        backbone=backbone,
        perceiver=PerceiverConfig(num_latents=8, latent_channels=16, num_bands=2),
        cnn=CNNConfig(channels=(8, 8), kernel_sizes=(3, 3), strides=(1, 1), num_keypoints=4, mlp_channels=16),
    )
    return build_policy(config, INPUT_SHAPE, TARGET_SHAPE, STATE_SHAPE)


@pytest.mark.parametrize("backbone", ["cnn", "perceiver"])
def test_the_prediction_depends_on_the_state_and_gradients_reach_its_encoder(backbone):
    torch.manual_seed(0)
    policy = _policy(backbone)
    frames = torch.randint(0, 255, (16, *INPUT_SHAPE), dtype=torch.uint8)
    state = torch.randn(16, *STATE_SHAPE)
    batches = [({"observation.image": frames, "observation.state": state}, torch.randn(16, *TARGET_SHAPE))]
    policy.fit_statistics(batches, batches)
    same_frames = {"observation.image": frames[:2], "observation.state": state[:2]}
    other_state = {"observation.image": frames[:2], "observation.state": state[:2] + 1.0}
    assert not torch.allclose(policy(same_frames), policy(other_state))
    policy(same_frames).square().sum().backward()
    state_params = (
        policy.backbone.state_encoder.parameters() if backbone == "perceiver" else policy.backbone.mlp[0].parameters()
    )
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in state_params)


@pytest.mark.parametrize("backbone", ["cnn", "perceiver"])
def test_a_wild_state_value_is_clipped_like_the_frames(backbone):
    torch.manual_seed(1)
    policy = _policy(backbone)
    frames = torch.randint(0, 255, (16, *INPUT_SHAPE), dtype=torch.uint8)
    state = torch.randn(16, *STATE_SHAPE)
    batches = [({"observation.image": frames, "observation.state": state}, torch.randn(16, *TARGET_SHAPE))]
    policy.fit_statistics(batches, batches)
    at_clip = policy({"observation.image": frames[:1], "observation.state": state[:1] + 50.0})
    far_beyond = policy({"observation.image": frames[:1], "observation.state": state[:1] + 5e6})
    assert torch.allclose(at_clip, far_beyond)  # both are |z| >= 10 everywhere, so both clip to the same input


def test_image_only_backbones_are_unchanged_and_refuse_a_state():
    cnn = SpatialSoftmaxCNN(CNNConfig(output_steps=2, output_channels=3), 3, (2, 8, 8))
    perceiver = PerceiverIO(PerceiverConfig(num_latents=4, latent_channels=8, output_steps=2), 1, (2, 8, 8, 3))
    assert not any("state" in name for name in perceiver.state_dict())
    with pytest.raises(InputError, match=r"SpatialSoftmaxCNN state: expected none"):
        cnn(torch.zeros(1, 128, 3), state=torch.zeros(1, 2, 4))
    with pytest.raises(InputError, match=r"PerceiverIO state: expected none"):
        perceiver(torch.zeros(1, 384, 1), state=torch.zeros(1, 2, 4))
    with_state = PerceiverIO(PerceiverConfig(num_latents=4, latent_channels=8, output_steps=2), 1, (2, 8, 8, 3), (2, 4))
    with pytest.raises(InputError, match=r"expected \[B=1, 2, 4\], got \[1, 2, 5\]"):
        with_state(torch.zeros(1, 384, 1), state=torch.zeros(1, 2, 5))
