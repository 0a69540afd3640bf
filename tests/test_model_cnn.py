"""The spatial-softmax CNN baseline: keypoint geometry, token regrouping, shapes, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.cnn import SpatialSoftmax, SpatialSoftmaxCNN
from rvperceiver.model.config import CNNConfig

TINY = CNNConfig(channels=(4, 4), kernel_sizes=(3, 3), strides=(2, 1), num_keypoints=5, mlp_channels=16,
                 output_steps=3, output_channels=2)


def test_spatial_softmax_returns_the_location_of_a_single_bright_pixel() -> None:
    height, width = 7, 9
    softmax = SpatialSoftmax(height, width)
    for row, col in ((0, 0), (3, 4), (6, 2), (1, 8)):
        features = torch.zeros(1, 2, height, width)
        features[0, 0, row, col] = 50.0  # channel 0: one bright pixel
        features[0, 1, height - 1 - row, width - 1 - col] = 50.0  # channel 1: the mirrored pixel
        keypoints = softmax(features)
        x, y = -1 + 2 * col / (width - 1), -1 + 2 * row / (height - 1)
        assert keypoints.shape == (1, 2, 2)
        assert torch.allclose(keypoints[0, 0], torch.tensor([x, y]), atol=1e-4)
        assert torch.allclose(keypoints[0, 1], torch.tensor([-x, -y]), atol=1e-4)


def test_spatial_softmax_of_a_flat_map_is_the_centre() -> None:
    assert torch.allclose(SpatialSoftmax(5, 8)(torch.zeros(2, 3, 5, 8)), torch.zeros(2, 3, 2), atol=1e-6)


def test_tokens_are_regrouped_into_frame_major_channels() -> None:
    model = SpatialSoftmaxCNN(TINY, 3, (2, 4, 5))
    frames = torch.arange(2 * 2 * 4 * 5 * 3, dtype=torch.float32).reshape(2, 2, 4, 5, 3)  # [B, T, H, W, C]
    tokens = frames.reshape(2, 2 * 4 * 5, 3)  # pixel-mode tokens, row-major over (T, H, W)
    image = model.tokens_to_image(tokens)
    assert image.shape == (2, 6, 4, 5)
    for t in range(2):
        for c in range(3):
            assert torch.equal(image[:, t * 3 + c], frames[:, t, :, :, c])


def test_forward_shapes_and_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = SpatialSoftmaxCNN(TINY, 3, (2, 16, 16))
    out = model(torch.rand(4, 2 * 16 * 16, 3))
    assert out.shape == (4, 3, 2)
    out.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_default_config_builds_and_runs_on_a_64px_image() -> None:
    torch.manual_seed(0)
    model = SpatialSoftmaxCNN(CNNConfig(), 3, (1, 64, 64))
    assert model(torch.rand(1, 64 * 64, 3)).shape == (1, 8, 3)


def test_bad_grid_and_tokens_raise_clear_errors() -> None:
    with pytest.raises(InputError, match=r"grid \(T, H, W\).*\(2, 8, 8, 3\)"):
        SpatialSoftmaxCNN(TINY, 1, (2, 8, 8, 3))
    with pytest.raises(InputError, match="grid"):
        SpatialSoftmaxCNN(TINY, 3, (64,))
    model = SpatialSoftmaxCNN(TINY, 3, (1, 8, 8))
    with pytest.raises(InputError, match=r"N=64, c=3.*got \[2, 63, 3\]"):
        model(torch.rand(2, 63, 3))
    with pytest.raises(InputError, match=r"got \[64, 3\]"):
        model(torch.rand(64, 3))
    with pytest.raises(ConfigError, match="input_channels"):
        SpatialSoftmaxCNN(TINY, 0, (1, 8, 8))


def test_cnn_config_validation_and_list_to_tuple() -> None:
    config = CNNConfig(channels=[8, 8], kernel_sizes=[3, 3], strides=[1, 1])  # type: ignore[arg-type]
    assert config.channels == (8, 8) and config == CNNConfig(channels=(8, 8), kernel_sizes=(3, 3), strides=(1, 1))
    with pytest.raises(ConfigError, match="equal lengths"):
        CNNConfig(channels=(8, 8), kernel_sizes=(3,), strides=(1, 1))
    with pytest.raises(ConfigError, match=r"channels\[\]"):
        CNNConfig(channels=(8, 0, 8))
    with pytest.raises(ConfigError, match="num_keypoints"):
        CNNConfig(num_keypoints=0)
