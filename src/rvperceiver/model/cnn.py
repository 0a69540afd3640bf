"""Convolutional baseline: conv stack → spatial-softmax keypoints → MLP, the recipe robot-learning users reach for
first (robomimic's visual encoders pool image features the same way).

It consumes the same pixel-mode (or patch-mode) tokens as the Perceiver, so the two backbones can be compared
behind one `InputView`: tokens `[B, T·H·W, C]` on the grid `(T, H, W)` are regrouped into a `[B, T·C, H, W]`
image, the T observed frames stacked along the channels. Low-dimensional observations (``observation.state``
``[B, T_obs, S]``, already normalised by the policy) are flattened and concatenated to the keypoints before the
MLP, as robomimic's observation encoder concatenates proprioception with the visual features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.attention import make_linear
from rvperceiver.model.config import CNNConfig


def _conv_output_size(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class SpatialSoftmax(nn.Module):
    """Feature maps `[B, K, H, W]` → keypoints `[B, K, 2]`: the softmax-weighted mean (x, y) of each map.

    x runs along the width and y along the height, both from -1 (first column/row) to 1 (last). A map that peaks
    sharply at one pixel yields that pixel's coordinates, so each channel learns to track one image feature.
    """

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(
            torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij"
        )
        self.register_buffer("coordinates", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1), persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        batch, channels = features.shape[:2]
        weights = torch.softmax(features.reshape(batch, channels, -1).float(), dim=-1)
        return weights @ self.coordinates


class SpatialSoftmaxCNN(nn.Module):
    """`forward(tokens [B, T·H·W, C]) -> [B, output_steps, output_channels]` for a token grid `(T, H, W)`."""

    takes_state = True

    def __init__(
        self,
        config: CNNConfig,
        input_channels: int,
        grid_shape: Sequence[int],
        state_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.state_shape = tuple(state_shape) if state_shape is not None else None
        state_width = math.prod(self.state_shape) if self.state_shape is not None else 0
        if not isinstance(config, CNNConfig):
            raise ConfigError(f"SpatialSoftmaxCNN needs a CNNConfig, got {type(config).__name__}")
        if isinstance(input_channels, bool) or not isinstance(input_channels, int) or input_channels <= 0:
            raise ConfigError(f"SpatialSoftmaxCNN input_channels must be a positive integer, got {input_channels!r}")
        grid = tuple(grid_shape)
        if len(grid) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in grid):
            raise InputError(
                f"SpatialSoftmaxCNN needs a token grid (T, H, W) of pixel- or patch-mode tokens, got grid_shape "
                f"{grid!r}; scalar-mode tokens (grid (T, H, W, C)) and flat arrays do not form an image"
            )
        self.config = config
        self.input_channels = input_channels
        self.grid_shape: tuple[int, int, int] = grid  # type: ignore[assignment]
        self.num_tokens = math.prod(grid)
        steps, height, width = grid

        layers: list[nn.Module] = []
        channels = steps * input_channels
        for out_channels, kernel, stride in zip(config.channels, config.kernel_sizes, config.strides):
            layers += [nn.Conv2d(channels, out_channels, kernel, stride=stride, padding=kernel // 2), nn.ReLU()]
            channels = out_channels
            height, width = _conv_output_size(height, kernel, stride), _conv_output_size(width, kernel, stride)
        self.convs = nn.Sequential(*layers)
        self.to_keypoint_maps = nn.Conv2d(channels, config.num_keypoints, kernel_size=1)
        self.spatial_softmax = SpatialSoftmax(height, width)

        mlp: list[nn.Module] = []
        width_in = 2 * config.num_keypoints + state_width
        for _ in range(config.mlp_layers):
            mlp += [make_linear(width_in, config.mlp_channels), nn.ReLU()]
            width_in = config.mlp_channels
        mlp.append(make_linear(width_in, config.output_steps * config.output_channels))
        self.mlp = nn.Sequential(*mlp)

    def tokens_to_image(self, tokens: Tensor) -> Tensor:
        """`[B, T·H·W, C]` → `[B, T·C, H, W]` (frame-major channels: frame 0's C channels first)."""
        steps, height, width = self.grid_shape
        batch = tokens.shape[0]
        frames = tokens.reshape(batch, steps, height, width, self.input_channels)
        return frames.permute(0, 1, 4, 2, 3).reshape(batch, steps * self.input_channels, height, width)

    def forward(self, tokens: Tensor, state: Tensor | None = None) -> Tensor:
        """``state [B, T_obs, S]`` is required exactly when the network was built with a ``state_shape``."""
        expected = f"[B, N={self.num_tokens}, c={self.input_channels}] (grid (T, H, W) = {self.grid_shape})"
        if not isinstance(tokens, Tensor) or tokens.dim() != 3:
            got = list(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise InputError(f"SpatialSoftmaxCNN tokens: expected shape {expected}, got {got}")
        if tuple(tokens.shape[1:]) != (self.num_tokens, self.input_channels):
            raise InputError(f"SpatialSoftmaxCNN tokens: expected shape {expected}, got {list(tokens.shape)}")
        if not tokens.is_floating_point():
            raise InputError(f"SpatialSoftmaxCNN tokens: expected a floating-point tensor, got {tokens.dtype}")
        features = self.to_keypoint_maps(self.convs(self.tokens_to_image(tokens)))
        keypoints = self.spatial_softmax(features).flatten(1).to(features.dtype)
        if (state is None) != (self.state_shape is None) or (
            state is not None and tuple(state.shape) != (tokens.shape[0], *self.state_shape)  # type: ignore[misc]
        ):
            want = f"[B={tokens.shape[0]}, {', '.join(map(str, self.state_shape))}]" if self.state_shape else "none"
            got = list(state.shape) if isinstance(state, Tensor) else None
            raise InputError(f"SpatialSoftmaxCNN state: expected {want}, got {got}")
        if state is not None:
            keypoints = torch.cat([keypoints, state.flatten(1).to(keypoints.dtype)], dim=1)
        out = self.mlp(keypoints)
        return out.view(tokens.shape[0], self.config.output_steps, self.config.output_channels)

