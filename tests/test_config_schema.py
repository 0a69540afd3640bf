"""The shared config schema: every config dataclass is checked from its type hints, however it is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from rvperceiver.config_schema import build, check_fields, describe, require_choice, to_plain
from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.config import CNNConfig, PerceiverConfig
from rvperceiver.model.policy import PolicyConfig
from rvperceiver.model.rollout import RolloutConfig
from rvperceiver.train.config import DataConfig, OptimConfig, TrainConfig
from rvperceiver.views.view import ViewConfig


@dataclass
class _Inner:
    size: int = 1
    mode: Literal["a", "bb"] = "a"

    def __post_init__(self) -> None:
        check_fields(self, "inner")


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    widths: tuple[int, ...] = ()
    rate: float | None = None

    def __post_init__(self) -> None:
        check_fields(self, "")


def test_build_checks_keys_and_types_and_round_trips() -> None:
    outer = build(_Outer, {"inner": {"size": 3}, "widths": [1, 2], "rate": 1})
    assert outer == _Outer(_Inner(3), (1, 2), 1.0) and isinstance(outer.rate, float)
    assert build(_Outer, to_plain(outer)) == outer
    with pytest.raises(ConfigError, match=r"unknown key 'inner.sise': did you mean inner.size\?"):
        build(_Outer, {"inner": {"sise": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'size': did you mean inner.size\?"):
        build(_Outer, {"size": 3})  # the right name in the wrong section
    with pytest.raises(ConfigError, match=r"inner.size must be an integer, got '3' \(str\)"):
        build(_Outer, {"inner": {"size": "3"}})
    with pytest.raises(ConfigError, match=r"inner must be a mapping \(section _Inner\), got 5"):
        build(_Outer, {"inner": 5})
    near_miss = r"inner.mode must be one of \['a', 'bb'\], got 'bbb' \(str\) \(did you mean 'bb'\?\)"
    with pytest.raises(ConfigError, match=near_miss):
        build(_Outer, {"inner": {"mode": "bbb"}})


def test_direct_construction_is_held_to_the_same_schema() -> None:
    with pytest.raises(ConfigError, match=r"inner.size must be an integer, got True \(bool\)"):
        _Inner(size=True)
    with pytest.raises(ConfigError, match=r"^inner must be a _Inner, got \{'size': 2\} \(dict\)"):
        _Outer(inner={"size": 2})  # type: ignore[arg-type]
    assert _Outer(widths=[4, 5]).widths == (4, 5)  # type: ignore[arg-type]


def test_every_config_package_checks_types_on_construction() -> None:
    with pytest.raises(ConfigError, match=r"data.t_obs must be an integer, got '2' \(str\)"):
        DataConfig(t_obs="2")  # type: ignore[arg-type]
    assert OptimConfig(lr=1).lr == 1.0 and isinstance(OptimConfig(lr=1).lr, float)
    with pytest.raises(ConfigError, match=r"^steps must be an integer, got 2.0 \(float\)"):
        TrainConfig(steps=2.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"PerceiverConfig.dropout must be a number, got '0.1' \(str\)"):
        PerceiverConfig(dropout="0.1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"CNNConfig.strides must be a list of an integer, got \(1, 'x'\)"):
        CNNConfig(strides=(1, "x"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"ViewConfig.clip must be a number or null, got '3' \(str\)"):
        ViewConfig(clip="3")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"rollout.n_action_steps must be an integer or null, got 1.0"):
        RolloutConfig(n_action_steps=1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"PolicyConfig.view must be a ViewConfig, got"):
        PolicyConfig(view={"transform": "rfft"})  # type: ignore[arg-type]


def test_policy_config_from_dict_checks_types_too() -> None:
    with pytest.raises(ConfigError, match=r"PolicyConfig.backbone must be a string, got 3 \(int\)"):
        PolicyConfig.from_dict({"backbone": 3})
    with pytest.raises(ConfigError, match=r"PolicyConfig.perceiver.num_latents must be an integer, got 'many'"):
        PolicyConfig.from_dict({"perceiver": {"num_latents": "many"}})


def test_choices_name_the_near_miss() -> None:
    adam = r"^x must be one of \['adam', 'adamw'\], got 'adamm' \(did you mean 'adam'\?\)$"
    with pytest.raises(ConfigError, match=adam):
        require_choice("x", "adamm", ("adam", "adamw"))
    with pytest.raises(ConfigError, match=r"^x must be one of \['adam', 'adamw'\], got 'sgd'$"):
        require_choice("x", "sgd", ("adam", "adamw"))
    with pytest.raises(ConfigError, match=r"did you mean 'cnn'\?"):
        PolicyConfig(backbone="cnm")


def test_describe_reads_like_the_messages() -> None:
    assert describe(int | None) == "an integer or null"
    assert describe(tuple[float, float]) == "a list of 2 values (a number, a number)"
    assert describe(tuple[int | str, ...] | None) == "a list of an integer or a string or null"


@dataclass
class _WithOverrides:
    overrides: dict[str, int] = field(default_factory=dict)


def test_a_mapping_field_checks_its_keys_and_values() -> None:
    assert build(_WithOverrides, {"overrides": {"a": 1, "b": 2}}).overrides == {"a": 1, "b": 2}
    with pytest.raises(ConfigError, match=r"overrides must be a mapping of a string to an integer, got \{'a': 1, 'b': 'x'\}"):
        build(_WithOverrides, {"overrides": {"a": 1, "b": "x"}})
    with pytest.raises(ConfigError, match=r"overrides must be a mapping of a string to an integer, got \[1, 2\]"):
        build(_WithOverrides, {"overrides": [1, 2]})
