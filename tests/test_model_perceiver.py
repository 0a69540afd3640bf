"""PerceiverIO: config, shapes, gradients, sharing, init, both exact cross-attention paths, old checkpoints, errors."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_save
from torch.utils._python_dispatch import TorchDispatchMode

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.attention import multi_head_attention
from rvperceiver.model.config import PerceiverConfig
from rvperceiver.model.perceiver import InputKeyValues, PerceiverIO
from rvperceiver.model.policy import Policy

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


# -- the factored key/value projection (materialised path) -------------------------------------------------------


def _textbook_key_values(key_values: InputKeyValues, tokens: torch.Tensor, positions: torch.Tensor | None):
    """Keys and values the plain way: concatenate [values ‖ positions] per example, normalise, project."""
    if key_values.value_norm is not None:
        tokens = key_values.value_norm(tokens)
    if positions is not None:
        tokens = torch.cat([tokens, positions.expand(tokens.shape[0], -1, -1)], dim=-1)
    if key_values.joint_norm is not None:
        tokens = key_values.joint_norm(tokens)
    return key_values.proj(tokens).chunk(2, dim=-1)


def _perturb_norms(model: torch.nn.Module) -> None:
    """Non-trivial LayerNorm gains and biases, so that every term of the key/value algebra matters."""
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1.0 + 0.3 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=generator))


@pytest.mark.parametrize("kv_norm", ["joint", "values"])
@pytest.mark.parametrize("position", ["fourier", "learned", "none"])
@pytest.mark.parametrize("channels", [1, 4])
def test_factored_key_values_equal_the_direct_computation(kv_norm: str, position: str, channels: int) -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(kv_norm=kv_norm, position=position, input_attention="materialised"), channels, (3, 8))
    _perturb_norms(model)
    key_values = model.encoder.first_cross_attend.key_values
    tokens = 3.0 * torch.randn(2, 24, channels) + 1.5
    positions = model.encoder.positions()
    fast = key_values(tokens, positions)
    direct = _textbook_key_values(key_values, tokens, positions)
    for a, b in zip(fast, direct):
        assert a.shape == (2, 24, 16)
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)

    # Gradients through the factored path equal those through the direct one.
    grads = []
    for compute in (key_values, lambda t, p: _textbook_key_values(key_values, t, p)):
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
@pytest.mark.parametrize("position", ["fourier", "none"])
def test_folded_weights_map_the_normalised_tokens_to_the_keys_and_values(kv_norm: str, position: str) -> None:
    torch.manual_seed(0)
    model = PerceiverIO(tiny(kv_norm=kv_norm, position=position), 3, (3, 8))
    _perturb_norms(model)
    key_values = model.encoder.first_cross_attend.key_values
    tokens, positions = 2.0 * torch.randn(2, 24, 3) - 1.0, model.encoder.positions()
    weight, bias = key_values.folded_weights()
    folded = torch.nn.functional.linear(key_values.normalised_tokens(tokens, positions), weight, bias)
    torch.testing.assert_close(folded, torch.cat(_textbook_key_values(key_values, tokens, positions), -1))


# -- the absorbed cross-attention --------------------------------------------------------------------------------


def test_input_attention_auto_rule_and_forced_choices() -> None:
    # H·L·F ≤ A·(F + L): seed layout (F = 18) at 1 head of 256 absorbs; 8 heads of 32 over F = 82 does not.
    seed = PerceiverConfig(num_latents=128, latent_channels=256)
    assert seed.absorbs_input_attention(18) and seed.absorbs_input_attention(69)
    narrow_heads = PerceiverConfig(num_latents=128, latent_channels=256, cross_heads=8)
    assert narrow_heads.absorbs_input_attention(18) and not narrow_heads.absorbs_input_attention(82)
    assert PerceiverConfig(input_attention="absorbed", cross_heads=8).absorbs_input_attention(500)
    assert not PerceiverConfig(input_attention="materialised").absorbs_input_attention(1)
    with pytest.raises(ConfigError, match="input_attention"):
        PerceiverConfig(input_attention="fast")
    model = PerceiverIO(tiny(num_cross_attends=2), 1, (3, 8))
    assert model.encoder.absorbed and model.encoder.token_width == 11
    assert all(layer.key_values.absorbed for layer in (model.encoder.first_cross_attend,
                                                        model.encoder.repeated_cross_attend))


def _two_paths(config: dict, channels: int, grid: tuple[int, ...], batch: int, dtype: torch.dtype, seed: int):
    """Outputs, parameter gradients and attention maps of the same model run absorbed and materialised."""
    tokens = 2.0 * torch.randn(batch, math.prod(grid), channels, generator=torch.Generator().manual_seed(seed)) + 0.5
    results = []
    for mode in ("absorbed", "materialised"):
        torch.manual_seed(seed)
        model = PerceiverIO(tiny(input_attention=mode, **config), channels, grid).to(dtype)
        _perturb_norms(model)
        assert model.encoder.absorbed == (mode == "absorbed")
        model.train()
        torch.manual_seed(seed + 1)  # the same dropout masks in both paths (same RNG stream, same element order)
        x = tokens.to(dtype).requires_grad_()
        out = model(x)
        (out.square().sum() + out.sin().sum()).backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        grads["tokens"] = x.grad
        model.eval()
        results.append((out.detach(), grads, model.attention_maps(tokens.to(dtype))))
    return results


def _assert_close_to_scale(
    actual: torch.Tensor, expected: torch.Tensor, tolerance: float, what: str, floor: float = 0.0
) -> None:
    scale = max(expected.abs().max().item(), 1e-3)
    error = (actual - expected).abs().max().item()
    assert error <= tolerance * scale + floor, f"{what}: max error {error:.3g} at scale {scale:.3g}"


@settings(max_examples=30, deadline=None)
@given(
    heads=st.sampled_from([1, 2, 4]),
    channels=st.integers(1, 5),
    position=st.sampled_from(["fourier", "learned", "none"]),
    num_bands=st.integers(1, 3),
    kv_norm=st.sampled_from(["joint", "values"]),
    num_cross_attends=st.sampled_from([1, 2]),
    chunk=st.sampled_from([None, 1, 2]),
    dropout=st.sampled_from([0.0, 0.0, 0.25]),
    narrow=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_absorbed_equals_materialised_outputs_and_gradients(
    heads: int,
    channels: int,
    position: str,
    num_bands: int,
    kv_norm: str,
    num_cross_attends: int,
    chunk: int | None,
    dropout: float,
    narrow: bool,
    seed: int,
) -> None:
    """In float64, so that the two exact computations agree to ~1e-12 and any algebra slip shows."""
    config = dict(
        cross_heads=heads,
        position=position,
        num_bands=num_bands,
        learned_position_channels=5,
        kv_norm=kv_norm,
        num_cross_attends=num_cross_attends,
        cross_attend_chunk=chunk,
        dropout=dropout,
        cross_attention_channels=8 if narrow and heads <= 2 else None,
    )
    absorbed, materialised = _two_paths(config, channels, (2, 3, 2), 3, torch.float64, seed)
    _assert_close_to_scale(absorbed[0], materialised[0], 1e-10, "outputs")
    assert absorbed[1].keys() == materialised[1].keys()
    for name, grad in materialised[1].items():
        _assert_close_to_scale(absorbed[1][name], grad, 1e-9, name)
    _assert_close_to_scale(absorbed[2], materialised[2], 1e-10, "attention maps")


@pytest.mark.parametrize("heads", [1, 4])
@pytest.mark.parametrize("kv_norm", ["joint", "values"])
def test_absorbed_equals_materialised_in_float32_to_rounding(heads: int, kv_norm: str) -> None:
    config = dict(cross_heads=heads, kv_norm=kv_norm, num_cross_attends=2, num_bands=4)
    absorbed, materialised = _two_paths(config, 1, (2, 16, 12), 2, torch.float32, 3)
    _assert_close_to_scale(absorbed[0], materialised[0], 2e-6, "outputs")
    for name, grad in materialised[1].items():
        if name.startswith("encoder.") and name.endswith("key_values.proj.bias"):
            # The key half's true gradient is 0 (a bias shared by every key cancels in the softmax): absorbed
            # gives exactly 0, materialised float32 rounding noise. The value half must agree.
            width = grad.shape[0] // 2
            assert torch.equal(absorbed[1][name][:width], torch.zeros(width))
            grad, absorbed[1][name] = grad[width:], absorbed[1][name][width:]
        # float32 rounding: ~1e-5 of a tensor's scale, and ~1e-7 absolute for tensors whose gradients are tiny
        _assert_close_to_scale(absorbed[1][name], grad, 5e-5, name, floor=5e-7)
    _assert_close_to_scale(absorbed[2], materialised[2], 1e-6, "attention maps")


def test_absorbed_attention_is_exact_with_zero_padding_of_the_token_width() -> None:
    from rvperceiver.model.attention import absorbed_attention

    generator = torch.Generator().manual_seed(4)
    q, tokens = torch.randn(2, 5, 8, generator=generator), torch.randn(2, 7, 3, generator=generator)
    key_weight, value_weight = torch.randn(8, 3, generator=generator), torch.randn(8, 3, generator=generator)
    value_bias = torch.randn(8, generator=generator)
    plain = absorbed_attention(q, tokens, key_weight, value_weight, value_bias, heads=2)
    padded = absorbed_attention(q, tokens, key_weight, value_weight, value_bias, heads=2, pad_multiple=8)
    torch.testing.assert_close(padded, plain)
    keys, values = tokens @ key_weight.t(), tokens @ value_weight.t() + value_bias
    torch.testing.assert_close(plain, multi_head_attention(q, keys, values, 2))


# -- checkpoints written before the absorbed path -----------------------------------------------------------------

CHECKPOINTS = Path(__file__).parent / "data" / "encoder_checkpoints"


@pytest.mark.parametrize("case", sorted(p.name for p in CHECKPOINTS.iterdir() if p.is_dir()))
@pytest.mark.parametrize("mode", ["auto", "absorbed", "materialised"])
def test_checkpoints_written_before_the_absorbed_path_predict_the_same(case: str, mode: str) -> None:
    """Written by the code at 612e32d (tests/data/make_encoder_checkpoints.py): same keys, same predictions."""
    from rvperceiver.train.checkpoint import load_policy

    probes = load_file(str(CHECKPOINTS / "probes.safetensors"))
    policy, _ = load_policy(CHECKPOINTS / case)
    if mode != "auto":
        forced = dataclasses.replace(
            policy.config, perceiver=dataclasses.replace(policy.config.perceiver, input_attention=mode)
        )
        rebuilt = Policy(forced, policy.input_shape, policy.target_shape)
        rebuilt.load_state_dict(policy.state_dict(), strict=True)
        policy = rebuilt.eval()
        assert policy.backbone.encoder.absorbed == (mode == "absorbed")
    with torch.no_grad():
        prediction = policy.predict(probes[f"{case}.input"])
    torch.testing.assert_close(prediction, probes[f"{case}.prediction"], rtol=0, atol=1e-5)


# -- memory: nothing of size B·N·A in a training step ------------------------------------------------------------


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator returns (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in torch.utils._pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.mark.parametrize("heads", [1, 4])
@pytest.mark.parametrize("num_cross_attends", [1, 2])
@pytest.mark.parametrize("mode", ["absorbed", "materialised"])
def test_absorbed_training_step_allocates_nothing_of_size_b_n_a(heads: int, num_cross_attends: int, mode: str) -> None:
    """B = 2, N = 1,200, A = 64, F = 1 + 10, L = 4. Absorbed, nothing in the forward or backward may exceed twice
    the normalised tokens (2·B·N·F = 52,800): not the keys or values (B·N·A = 153,600 each), and not a per-head
    copy of the tokens (B·H·N·F = 105,600 at 4 heads, what expanding the tokens over the heads would cost in the
    backward). Every operator's output and every tensor saved for the backward is checked."""
    torch.manual_seed(0)
    config = tiny(num_latents=4, latent_channels=64, cross_heads=heads, num_cross_attends=num_cross_attends,
                  input_attention=mode)
    model = PerceiverIO(config, 1, (30, 40)).train()
    batch, tokens, width = 2, 1200, model.encoder.token_width
    assert width == 11
    saved: list[int] = []
    with _LargestTensor() as largest, torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        model(torch.randn(batch, tokens, 1)).square().sum().backward()
    if mode == "absorbed":
        assert largest.largest <= 2 * batch * tokens * width and max(saved) <= 2 * batch * tokens * width
    else:  # the check can fail: materialised keys and values are B·N·A each
        assert largest.largest >= batch * tokens * 64


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
