"""Policy: view + backbone + target normaliser, config round trip, statistics fitting, determinism."""

from __future__ import annotations

import json

import pytest
import torch

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model import (
    CNNConfig,
    PerceiverConfig,
    PerceiverIO,
    Policy,
    PolicyConfig,
    SpatialSoftmaxCNN,
    build_policy,
)
from rvperceiver.views import ViewConfig

INPUT_SHAPE = (2, 8, 8, 3)  # [T_obs, H, W, C]
TARGET_SHAPE = (4, 3)  # [T_pred, D]
TINY_PERCEIVER = PerceiverConfig(num_latents=8, latent_channels=16, self_heads=2, num_bands=2)
TINY_CNN = CNNConfig(channels=(4,), kernel_sizes=(3,), strides=(1,), num_keypoints=4, mlp_channels=8)


def _config(**overrides: object) -> PolicyConfig:
    base = dict(
        view=ViewConfig(pre_norm="centre", transform="rfft", post_norm="zscore"),
        perceiver=TINY_PERCEIVER,
        cnn=TINY_CNN,
    )
    return PolicyConfig(**{**base, **overrides})  # type: ignore[arg-type]


def _data(seed: int = 0, count: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (count, *INPUT_SHAPE), dtype=torch.uint8, generator=generator)
    targets = 0.1 * torch.randn(count, *TARGET_SHAPE, generator=generator) + torch.tensor([0.3, -0.2, 0.05])
    return frames, targets


def _fitted(config: PolicyConfig) -> tuple[Policy, torch.Tensor]:
    torch.manual_seed(0)
    policy = build_policy(config, INPUT_SHAPE, TARGET_SHAPE)
    frames, targets = _data()
    policy.fit_statistics([frames[:6], frames[6:]], targets)
    return policy, frames


@pytest.mark.parametrize(
    ("backbone", "view", "kind"),
    [
        ("perceiver", ViewConfig(pre_norm="centre", transform="rfft", post_norm="zscore"), PerceiverIO),
        ("cnn", ViewConfig(token_mode="pixel", pre_norm="zscore"), SpatialSoftmaxCNN),
    ],
)
def test_policy_wires_view_backbone_and_target_normaliser(backbone: str, view: ViewConfig, kind: type) -> None:
    policy, frames = _fitted(_config(backbone=backbone, view=view))
    assert isinstance(policy.backbone, kind)
    assert policy.is_fitted
    assert policy.input_shape == INPUT_SHAPE and policy.target_shape == TARGET_SHAPE
    assert policy.backbone.input_channels == policy.view.out_channels
    assert policy.backbone.grid_shape == policy.view.grid_shape
    out = policy(frames)
    assert out.shape == (12, *TARGET_SHAPE)
    out.square().mean().backward()
    for name, parameter in policy.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_predict_is_denormalised_forward() -> None:
    policy, frames = _fitted(_config())
    policy.eval()
    with torch.no_grad():
        normalised = policy(frames)
        predicted = policy.predict(frames)
    expected = normalised * policy.target_norm.scale + policy.target_norm.offset
    assert torch.allclose(predicted, expected, atol=1e-6)
    assert torch.allclose(policy.target_norm.denormalize(normalised), predicted)
    assert not torch.allclose(predicted, normalised)


def test_fit_statistics_fits_view_and_targets() -> None:
    torch.manual_seed(0)
    policy = build_policy(_config(), INPUT_SHAPE, TARGET_SHAPE)
    frames, targets = _data()
    with pytest.raises(InputError):
        policy(frames)  # the view needs statistics first
    summary = policy.fit_statistics([(frames[:6], targets[:6]), (frames[6:], targets[6:])],
                                    [(frames[:6], targets[:6]), (frames[6:], targets[6:])])
    assert summary["view"]["examples"] == 12.0
    flat = targets.reshape(-1, 3).double()
    assert torch.allclose(policy.target_norm.offset.double(), flat.mean(0), atol=1e-6)
    assert torch.allclose(policy.target_norm.scale.double(), flat.std(0, unbiased=False), atol=1e-6)


def test_target_shape_sets_the_backbone_output() -> None:
    torch.manual_seed(0)
    config = _config(perceiver=PerceiverConfig(num_latents=8, latent_channels=16, self_heads=2, output_steps=8))
    policy = build_policy(config, INPUT_SHAPE, (5, 2))
    assert policy.config.perceiver.output_steps == 5 and policy.config.perceiver.output_channels == 2
    assert policy.config.cnn.output_steps == 5
    assert config.perceiver.output_steps == 8  # the caller's config is not mutated
    with pytest.raises(InputError, match="target_shape"):
        build_policy(config, INPUT_SHAPE, (5,))


def test_policy_config_round_trips_through_json() -> None:
    config = _config(backbone="cnn", target_norm="minmax")
    data = json.loads(json.dumps(config.to_dict()))
    assert data["cnn"]["channels"] == [4] and data["view"]["transform"] == "rfft"
    assert PolicyConfig.from_dict(data) == config
    assert PolicyConfig.from_dict({}) == PolicyConfig()


def test_policy_config_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="backbone"):
        PolicyConfig(backbone="transformer")
    with pytest.raises(ConfigError, match="target_norm"):
        PolicyConfig(target_norm="robust")
    with pytest.raises(ConfigError, match=r"unknown key 'PolicyConfig.perciever': did you mean PolicyConfig.perceiver\?"):
        PolicyConfig.from_dict({"perciever": {}})
    with pytest.raises(ConfigError, match=r"unknown key 'PolicyConfig.perceiver.num_latent': did you mean PolicyConfig"):
        PolicyConfig.from_dict({"perceiver": {"num_latent": 4}})
    with pytest.raises(ConfigError, match="PolicyConfig.view"):
        PolicyConfig.from_dict({"view": {"transform": "wavelet"}})
    with pytest.raises(ConfigError, match="num_latents"):
        PolicyConfig.from_dict({"perceiver": {"num_latents": -1}})


def test_same_seed_gives_the_same_policy() -> None:
    def build(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_policy(_config(), INPUT_SHAPE, TARGET_SHAPE).state_dict()

    first, second, other = build(3), build(3), build(4)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_state_dict_round_trip_reproduces_predictions() -> None:
    policy, frames = _fitted(_config())
    torch.manual_seed(99)
    clone = build_policy(policy.config, INPUT_SHAPE, TARGET_SHAPE)
    clone.load_state_dict(policy.state_dict())
    policy.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(policy.predict(frames), clone.predict(frames))


# ---------------------------------------------------------------------------------------------------------------
# Per-step interface and low-dim observations
# ---------------------------------------------------------------------------------------------------------------


def _fitted_policy(config: PolicyConfig | None = None) -> Policy:
    torch.manual_seed(0)
    policy = build_policy(config or _config(), INPUT_SHAPE, TARGET_SHAPE)
    frames, targets = _data()
    policy.fit_statistics([frames], targets)
    return policy.eval()


def test_select_action_runs_the_chunk_of_the_padded_window() -> None:
    from rvperceiver.model.rollout import RolloutConfig

    policy = _fitted_policy(_config(rollout=RolloutConfig(n_action_steps=2)))
    frames, _ = _data(seed=3, count=1)
    episode = frames[0]  # two distinct frames
    policy.reset()
    first = policy.select_action({"observation.image": episode[0].numpy()})
    second = policy.select_action({"observation.image": episode[1].numpy()})
    third = policy.select_action(episode[1].numpy())  # a bare frame is accepted too
    padded = torch.stack([episode[0], episode[0]]).unsqueeze(0)
    chunk = policy.predict_chunk({"observation.image": padded})[0]
    assert first.shape == (3,)
    assert torch.equal(first, chunk[0]) and torch.equal(second, chunk[1])  # one chunk serves 2 steps
    newer = policy.predict_chunk(torch.stack([episode[0], episode[1], episode[1]])[1:].unsqueeze(0))[0]
    assert torch.equal(third, newer[0])  # the history slid by one frame, then a new chunk
    policy.reset()
    assert torch.equal(policy.select_action(episode[0].numpy()), first)  # reset forgets the episode


def test_set_rollout_changes_execution_not_the_network() -> None:
    from rvperceiver.model.rollout import RolloutConfig

    policy = _fitted_policy()
    weights = {k: v.clone() for k, v in policy.state_dict().items()}
    policy.set_rollout(RolloutConfig(setpoint="chunk_end", n_action_steps=4))
    frame = _data(count=1)[0][0, 0].numpy()
    policy.reset()
    chunk = policy.predict_chunk(torch.from_numpy(frame).expand(1, 2, *frame.shape))[0]
    assert torch.equal(policy.select_action(frame), chunk[-1])
    assert all(torch.equal(v, policy.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(ConfigError, match="n_action_steps is 5"):
        policy.set_rollout(RolloutConfig(n_action_steps=5))


def test_a_backbone_that_does_not_take_low_dim_observations_is_refused(monkeypatch) -> None:
    import rvperceiver.model.policy as policy_module
    from rvperceiver.model.cnn import SpatialSoftmaxCNN

    class ImageOnlyCNN(SpatialSoftmaxCNN):
        takes_state = False

    monkeypatch.setattr(policy_module, "SpatialSoftmaxCNN", ImageOnlyCNN)
    with pytest.raises(ConfigError, match="does not take low-dim observations"):
        build_policy(_config(backbone="cnn", view=ViewConfig(token_mode="pixel")), INPUT_SHAPE, TARGET_SHAPE, (2, 5))


def test_low_dim_observations_are_normalised_and_reach_a_backbone_that_takes_them(state_taking_cnn) -> None:
    policy = build_policy(_config(backbone="cnn", view=ViewConfig(token_mode="pixel")), INPUT_SHAPE, TARGET_SHAPE, (2, 5))
    frames, targets = _data()
    state = 3.0 + 2.0 * torch.randn(len(frames), 2, 5)
    batches = [({"observation.image": frames, "observation.state": state}, targets)]
    summary = policy.fit_statistics(batches, batches)
    assert "state" in summary and policy.is_fitted
    assert torch.allclose(policy.state_norm.offset, state.reshape(-1, 5).mean(0), atol=1e-5)
    out = policy({"observation.image": frames, "observation.state": state})
    assert out.shape == (len(frames), *TARGET_SHAPE)
    seen = policy.backbone.seen[-1]
    assert abs(float(seen.mean())) < 0.2 and abs(float(seen.std()) - 1.0) < 0.2  # z-scored before the backbone
    with pytest.raises(InputError, match="low-dim observations"):
        policy(frames)
    with pytest.raises(InputError, match=r"expects \[B, 2, 5\]"):
        policy({"observation.image": frames, "observation.state": state[:, :, :4]})
    policy.eval().reset()
    action = policy.select_action({"observation.image": frames[0, 0].numpy(), "observation.state": state[0, 0].numpy()})
    assert action.shape == (3,)
