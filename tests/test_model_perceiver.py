"""PerceiverIO: config validation, shapes, gradients, weight sharing, init, the factored key/value path, errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save as safetensors_save

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.config import PerceiverConfig
from rvperceiver.model.perceiver import PerceiverIO

TINY = dict(num_latents=8, latent_channels=16, self_heads=2, num_bands=2, output_steps=3, output_channels=2)


def tiny(**overrides: object) -> PerceiverConfig:
    return PerceiverConfig(**{**TINY, **overrides})  # type: ignore[arg-type]


def _assert_every_parameter_has_a_gradient(module: torch.nn.Module) -> None:
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


# -- config --------------------------------------------------------------------------------------------------------


def test_default_config_matches_the_interface() -> None:
    config = PerceiverConfig()
    assert (config.num_latents, config.latent_channels, config.cross_heads, config.self_heads) == (64, 128, 1, 4)
    assert (config.self_layers_per_block, config.num_blocks, config.num_cross_attends) == (2, 1, 1)
    assert (config.position, config.num_bands, config.max_freq, config.init_scale) == ("fourier", 8, None, 0.02)
    assert (config.output_steps, config.output_channels, config.dropout, config.kv_norm) == (8, 3, 0.0, "joint")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("num_latents", 0, "num_latents"),
        ("latent_channels", -4, "latent_channels"),
        ("num_blocks", 1.5, "num_blocks"),
        ("num_cross_attends", True, "num_cross_attends"),
        ("self_heads", 3, "self_heads=3 must divide"),
        ("cross_heads", 5, "cross_heads=5 must divide"),
        ("dropout", 1.0, "dropout"),
        ("position", "rope", "position"),
        ("kv_norm", "both", "kv_norm"),
        ("max_freq", 0.0, "max_freq"),
        ("init_scale", float("nan"), "init_scale"),
        ("cross_attend_chunk", 0, "cross_attend_chunk"),
        ("cross_attend_chunk", 2.0, "cross_attend_chunk"),
        ("attention_backend", "cudnn", "attention_backend"),
        ("cross_attention_channels", 0, "cross_attention_channels"),
        ("cross_attention_channels", 2.5, "cross_attention_channels"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        PerceiverConfig(**{field: value})  # type: ignore[arg-type]
    assert repr(value) in str(info.value) or str(value) in str(info.value)


# -- shapes, gradients, errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kv_norm", ["joint", "values"])
@pytest.mark.parametrize("position", ["fourier", "learned", "none"])
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shapes_and_every_parameter_gets_a_gradient(kv_norm: str, position: str, channels: int) -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(kv_norm=kv_norm, position=position, num_cross_attends=2), channels, (2, 3, 4))
    tokens = torch.randn(2, 24, channels)
    out = model(tokens)
    assert out.shape == (2, 3, 2)
    out.square().sum().backward()
    _assert_every_parameter_has_a_gradient(model)


def test_forward_and_backward_on_two_examples_of_12288_scalar_tokens() -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(), 1, (2, 64, 32, 3))  # 2 frames of 64×32×3 = 12,288 scalar tokens
    tokens = torch.randn(2, 12288, 1)
    out = model(tokens)
    assert out.shape == (2, 3, 2)
    out.sum().backward()
    _assert_every_parameter_has_a_gradient(model)


def test_single_channel_tokens_keep_their_signal() -> None:
    """A LayerNorm over one channel outputs a constant; the model must still see the values."""
    torch.manual_seed(0)
    for position, kv_norm in (("none", "joint"), ("none", "values"), ("fourier", "joint"), ("fourier", "values")):
        model = PerceiverIO(tiny(position=position, kv_norm=kv_norm), 1, (16,)).eval()
        tokens = torch.zeros(1, 16, 1)
        changed = tokens.clone()
        changed[0, 5, 0] = 1.0
        assert not torch.allclose(model(tokens), model(changed), atol=1e-4), (position, kv_norm)


def test_bad_tokens_raise_input_error_naming_expected_and_got() -> None:
    model = PerceiverIO(tiny(), 3, (4, 5))
    with pytest.raises(InputError, match=r"N=20, c=3.*got \[20, 3\]"):
        model(torch.randn(20, 3))
    with pytest.raises(InputError, match=r"got \[2, 19, 3\]"):
        model(torch.randn(2, 19, 3))
    with pytest.raises(InputError, match=r"got \[2, 20, 1\]"):
        model(torch.randn(2, 20, 1))
    with pytest.raises(InputError, match="floating-point"):
        model(torch.zeros(2, 20, 3, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="input_channels"):
        PerceiverIO(tiny(), 0, (4, 5))
    with pytest.raises(ConfigError, match="grid_shape"):
        PerceiverIO(tiny(), 3, (4, 0))


def test_attention_maps_are_distributions_over_the_tokens() -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(cross_heads=2), 1, (3, 5))
    maps = model.attention_maps(torch.randn(2, 15, 1))
    assert maps.shape == (2, 2, 8, 15)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 8), atol=1e-5)
    assert (maps >= 0).all()


def test_attention_maps_reproduce_the_first_cross_attend() -> None:
    """The fused SDPA result equals the explicit weights applied to the values."""
    torch.manual_seed(0)
    model = PerceiverIO(tiny(cross_heads=2), 2, (6,))
    tokens = torch.randn(3, 6, 2)
    layer = model.encoder.first_cross_attend
    positions = model.encoder.positions()
    _, values = layer.key_values(tokens, positions)
    weights = model.attention_maps(tokens)  # [B, heads, L, N]
    heads_values = values.view(3, 6, 2, 8).transpose(1, 2)
    manual = (weights @ heads_values).transpose(1, 2).reshape(3, 8, 16)
    expected_latents = model.encoder.latents + layer.o_proj(manual)
    expected_latents = expected_latents + layer.mlp(expected_latents)
    assert torch.allclose(layer(model.encoder.latents, tokens, positions), expected_latents, atol=1e-5)


def test_bfloat16_autocast_runs_on_cpu() -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(), 1, (4, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 24, 1))
    assert out.shape == (2, 3, 2) and torch.isfinite(out.float()).all()


# -- init, sharing, determinism ------------------------------------------------------------------------------------


def test_latents_and_queries_are_truncated_normal_with_init_scale() -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(num_latents=512, latent_channels=128, self_heads=4, output_steps=64), 1, (4,))
    for array in (model.encoder.latents.detach(), model.decoder.queries.detach()):
        assert float(array.abs().max()) <= 0.04 + 1e-7
        # A normal truncated at ±2σ has std ≈ 0.880σ.
        assert abs(float(array.std()) - 0.880 * 0.02) < 0.001
        assert abs(float(array.mean())) < 0.001


def test_weight_sharing_reuses_modules() -> None:
    base = PerceiverIO(tiny(num_cross_attends=2, num_blocks=1), 1, (4, 4))
    deep = PerceiverIO(tiny(num_cross_attends=5, num_blocks=3), 1, (4, 4))
    single = PerceiverIO(tiny(num_cross_attends=1, num_blocks=1), 1, (4, 4))

    def count(model: PerceiverIO) -> int:
        return sum(p.numel() for p in model.parameters())

    # Extra cross-attends and blocks add no parameters; a second (unshared-from-the-first) cross-attend does.
    assert count(deep) == count(base) > count(single)
    assert single.encoder.repeated_cross_attend is None
    assert deep.encoder.repeated_cross_attend is not deep.encoder.first_cross_attend

    calls = {"first": 0, "repeated": 0, "block": 0}
    encoder = deep.encoder
    encoder.first_cross_attend.register_forward_hook(lambda *_: calls.__setitem__("first", calls["first"] + 1))
    assert encoder.repeated_cross_attend is not None
    encoder.repeated_cross_attend.register_forward_hook(
        lambda *_: calls.__setitem__("repeated", calls["repeated"] + 1)
    )
    encoder.latent_block.register_forward_hook(lambda *_: calls.__setitem__("block", calls["block"] + 1))
    deep(torch.randn(1, 16, 1))
    assert calls == {"first": 1, "repeated": 4, "block": 5 * 3}


def test_same_seed_gives_the_same_initialisation() -> None:
    def build(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return PerceiverIO(tiny(position="learned"), 1, (3, 4)).state_dict()

    first, second, other = build(7), build(7), build(8)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_state_dict_saves_with_safetensors_and_omits_fixed_fourier_features() -> None:
    model = PerceiverIO(tiny(num_cross_attends=3), 1, (3, 4))
    state = model.state_dict()
    assert not any("fourier" in key for key in state)
    assert len(safetensors_save({k: v.contiguous() for k, v in state.items()})) > 0  # no shared storage


# -- the factored key/value projection -----------------------------------------------------------------------------


@pytest.mark.parametrize("kv_norm", ["joint", "values"])
@pytest.mark.parametrize("position", ["fourier", "learned", "none"])
@pytest.mark.parametrize("channels", [1, 4])
def test_factored_key_values_equal_the_direct_computation(kv_norm: str, position: str, channels: int) -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(kv_norm=kv_norm, position=position), channels, (3, 8))
    key_values = model.encoder.first_cross_attend.key_values
    # Give the LayerNorm non-trivial affine parameters and the tokens an offset, so every term matters.
    if key_values.joint_norm is not None:
        torch.nn.init.normal_(key_values.joint_norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(key_values.joint_norm.bias, 0.0, 0.3)
    tokens = 3.0 * torch.randn(2, 24, channels) + 1.5
    positions = model.encoder.positions()
    fast = key_values(tokens, positions)
    direct = key_values.reference(tokens, positions)
    for a, b in zip(fast, direct):
        assert a.shape == (2, 24, 16)
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)

    # Gradients through the factored path equal those through the direct one.
    grads = []
    for compute in (key_values, key_values.reference):
        key_values.zero_grad()
        k, v = compute(tokens, positions)
        (k.sin().sum() + v.cos().sum()).backward()
        grads.append({n: p.grad.clone() for n, p in key_values.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-4, rtol=1e-4), name


def test_joint_norm_is_applied_over_values_and_positions() -> None:
    """joint: LayerNorm sees [v ‖ p] (c + P channels); values: only v, and nothing when c = 1."""
    joint = PerceiverIO(tiny(kv_norm="joint"), 1, (3, 8)).encoder.first_cross_attend.key_values
    values = PerceiverIO(tiny(kv_norm="values"), 1, (3, 8)).encoder.first_cross_attend.key_values
    values3 = PerceiverIO(tiny(kv_norm="values"), 3, (3, 8)).encoder.first_cross_attend.key_values
    assert joint.joint_norm is not None and joint.joint_norm.normalized_shape == (1 + 2 * 5,)
    assert values.joint_norm is None and values.value_norm is None
    assert values3.value_norm is not None and values3.value_norm.normalized_shape == (3,)


@pytest.mark.parametrize("kv_norm", ["joint", "values"])
def test_cached_position_projection_equals_the_uncached_one(kv_norm: str) -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(kv_norm=kv_norm), 1, (4, 6))
    key_values = model.encoder.first_cross_attend.key_values
    tokens = torch.randn(2, 24, 1)
    model.train()
    uncached = model(tokens).detach()
    assert key_values._position_cache is None

    model.eval()
    with torch.no_grad():
        first = model(tokens)
        cache = key_values._position_cache
        assert cache is not None
        second = model(tokens)
        assert key_values._position_cache is cache  # reused, not recomputed
        direct = key_values.reference(tokens, model.encoder.positions())
        assert torch.allclose(torch.cat(key_values(tokens, model.encoder.positions()), -1), torch.cat(direct, -1),
                              atol=1e-5)
    assert torch.allclose(first, uncached, atol=1e-6) and torch.equal(first, second)

    # An in-place weight update (as an optimiser step does) invalidates the cache.
    with torch.no_grad():
        key_values.proj.weight.mul_(1.5)
        updated = model(tokens)
        assert key_values._position_cache is not cache
    model.train()
    assert key_values._position_cache is None
    assert torch.allclose(updated, model(tokens).detach(), atol=1e-6)
    assert not torch.allclose(updated, first, atol=1e-4)


def test_no_cache_while_autograd_is_on_in_eval_mode() -> None:
    model = PerceiverIO(tiny(), 1, (4, 6)).eval()
    out = model(torch.randn(1, 24, 1))
    assert model.encoder.first_cross_attend.key_values._position_cache is None
    out.sum().backward()
    assert model.encoder.first_cross_attend.key_values.proj.weight.grad is not None


# -- chunked, checkpointed cross-attend ------------------------------------------------------------------------------


def _outputs_and_gradients(config: PerceiverConfig, tokens: torch.Tensor) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(0)
    model = PerceiverIO(config, tokens.shape[-1], (2, 3, 4))
    model.train()
    out = model(tokens)
    out.square().sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("kv_norm", ["joint", "values"])
@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_chunked_cross_attend_gives_the_same_outputs_and_gradients(kv_norm: str, chunk: int) -> None:
    # 5 examples: chunks of 2 and 4 leave a ragged last chunk; 2 cross-attends: the repeated one's query is [B, L, D].
    tokens = torch.randn(5, 24, 3, generator=torch.Generator().manual_seed(1))
    plain_out, plain_grads = _outputs_and_gradients(tiny(kv_norm=kv_norm, num_cross_attends=2), tokens)
    chunk_out, chunk_grads = _outputs_and_gradients(
        tiny(kv_norm=kv_norm, num_cross_attends=2, cross_attend_chunk=chunk), tokens
    )
    # Equal to 1e-6 relative to each tensor's scale: summing per-chunk gradients rounds in a different order, so
    # float32 gradients of magnitude ~40 differ in the last bits (~2e-7 relative), never more.
    torch.testing.assert_close(chunk_out, plain_out, rtol=1e-6, atol=1e-6 * plain_out.abs().max().item())
    assert chunk_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        scale = grad.abs().max().item()
        torch.testing.assert_close(chunk_grads[name], grad, rtol=1e-6, atol=1e-6 * scale, msg=name)


def test_chunked_cross_attend_checkpoints_only_in_training_with_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    import rvperceiver.model.perceiver as perceiver_module

    calls: list[int] = []
    real_checkpoint = perceiver_module.checkpoint

    def counting_checkpoint(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return real_checkpoint(*args, **kwargs)

    monkeypatch.setattr(perceiver_module, "checkpoint", counting_checkpoint)
    model = PerceiverIO(tiny(cross_attend_chunk=2), 1, (2, 3, 4))
    tokens = torch.randn(5, 24, 1)
    model.train()
    model(tokens)
    assert len(calls) == 3  # chunks of 2, 2, 1
    calls.clear()
    model(tokens[:2])  # one chunk would save nothing: plain path
    with torch.no_grad():
        model(tokens)
    model.eval()
    model(tokens)
    assert calls == []


@pytest.mark.parametrize("backend", ["math", "flash"])
def test_attention_backend_reaches_every_attention_and_keeps_the_outputs(backend: str) -> None:
    tokens = torch.randn(2, 24, 1, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    reference = PerceiverIO(tiny(num_cross_attends=2), 1, (2, 3, 4))
    torch.manual_seed(0)
    model = PerceiverIO(tiny(num_cross_attends=2, attention_backend=backend), 1, (2, 3, 4))
    layers = [m for m in model.modules() if hasattr(m, "backend")]
    assert len(layers) == 2 + 2 + 1  # two cross-attends, two self-attention layers, the decoder's cross-attend
    assert all(layer.backend == backend for layer in layers)
    torch.testing.assert_close(model(tokens), reference(tokens), rtol=1e-5, atol=1e-5)


# -- cross-attention width ---------------------------------------------------------------------------------------


def test_cross_attention_channels_must_split_evenly_over_the_cross_heads() -> None:
    with pytest.raises(ConfigError, match="cross_heads=4 must divide PerceiverConfig.cross_attention_channels=6"):
        PerceiverConfig(cross_heads=4, cross_attention_channels=6)


def test_cross_attention_width_defaults_to_the_latent_width() -> None:
    model = PerceiverIO(tiny(), 1, (2, 3, 4))
    layer = model.encoder.first_cross_attend
    assert model.config.cross_attention_width == 16
    assert layer.q_proj.weight.shape == (16, 16) and layer.o_proj.weight.shape == (16, 16)
    assert layer.key_values.proj.weight.shape[0] == 2 * 16


def test_cross_attention_channels_narrow_the_encoder_cross_attends_only() -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(cross_attention_channels=4, cross_heads=2, num_cross_attends=2), 3, (2, 3, 4))
    for layer in (model.encoder.first_cross_attend, model.encoder.repeated_cross_attend):
        assert layer.q_proj.weight.shape == (4, 16)  # latents D=16 → A=4
        assert layer.o_proj.weight.shape == (16, 4)  # back to D
        assert layer.key_values.proj.weight.shape[0] == 2 * 4
    decoder = model.decoder.cross_attend
    assert decoder.q_proj.weight.shape == (16, 16)
    tokens = torch.randn(2, 24, 3)
    out = model(tokens)
    assert out.shape == (2, 3, 2)
    out.square().sum().backward()
    _assert_every_parameter_has_a_gradient(model)
    maps = model.attention_maps(tokens)
    assert maps.shape == (2, 2, 8, 24)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 8))


def test_narrow_cross_attention_with_chunking_gives_the_same_gradients() -> None:
    tokens = torch.randn(3, 24, 1, generator=torch.Generator().manual_seed(3))
    plain_out, plain_grads = _outputs_and_gradients(tiny(cross_attention_channels=8), tokens)
    chunk_out, chunk_grads = _outputs_and_gradients(tiny(cross_attention_channels=8, cross_attend_chunk=2), tokens)
    torch.testing.assert_close(chunk_out, plain_out, rtol=1e-6, atol=1e-6 * plain_out.abs().max().item())
    for name, grad in plain_grads.items():
        torch.testing.assert_close(chunk_grads[name], grad, rtol=1e-6, atol=1e-6 * grad.abs().max().item(), msg=name)
