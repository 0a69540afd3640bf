from __future__ import annotations

import json
from pathlib import Path

import pytest

from rvperceiver.errors import ConfigError
from rvperceiver.train.config import (
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    parse_override,
    to_dict,
    to_json,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert config == TrainConfig()
    assert config.optim.betas == (0.9, 0.999)
    assert config.data.t_obs == 2 and config.data.t_pred == 8


@pytest.mark.parametrize("name", ["tiny", "reacher_spectral", "reacher_raw", "reacher_cnn"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    assert isinstance(config, TrainConfig)
    assert config.steps > 0


def test_shipped_reacher_configs_differ_in_the_view_only() -> None:
    spectral = to_dict(load_config(CONFIGS / "reacher_spectral.yaml"))
    raw = to_dict(load_config(CONFIGS / "reacher_raw.yaml"))
    assert spectral["policy"]["view"]["transform"] == "rfft"
    assert raw["policy"]["view"]["transform"] == "identity"
    for section in (spectral, raw):
        section["policy"].pop("view")
        section.pop("out_dir")
    assert spectral == raw


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    path = _write(tmp_path, "optim:\n  lrr: 0.001\n")
    with pytest.raises(ConfigError, match=r"optim\.lrr.*did you mean optim\.lr\?") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_unknown_nested_policy_key_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError, match=r"did you mean policy\.perceiver\.num_latents\?"):
        load_config(None, ["policy.perceiver.num_latentz=8"])


def test_key_in_the_wrong_section_points_to_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'lr'.*did you mean optim\.lr\?"):
        load_config(_write(tmp_path, "lr: 0.001\n"))


def test_wrong_type_names_key_expected_type_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"batch_size must be an integer, got 'lots' \(str\)"):
        load_config(_write(tmp_path, "batch_size: lots\n"))
    with pytest.raises(ConfigError, match=r"steps must be an integer, got 1.5"):
        load_config(None, ["steps=1.5"])
    with pytest.raises(ConfigError, match=r"amp must be true/false, got 1"):
        load_config(None, ["amp=1"])
    with pytest.raises(ConfigError, match=r"optim\.betas must be a list of 2 values"):
        load_config(None, ["optim.betas=[0.9]"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("steps=0", "steps must be a positive integer"),
        ("batch_size=-4", "batch_size must be a positive integer"),
        ("data.valid_fraction=1.5", r"data\.valid_fraction must be in \[0, 1\)"),
        ("optim.lr=0", r"optim\.lr must be a positive number"),
        ("optim.betas=[0.9,1.0]", r"optim\.betas must be two numbers in \[0, 1\)"),
        ("optim.name=sgd", r"optim\.name must be one of \['adam', 'adamw'\]"),
        ("device=gpu", "device must be auto, cpu"),
        ("data.t_obs=0", r"data\.t_obs must be a positive integer"),
        ("torch_threads=0", r"torch_threads must be null or an integer >= 1"),
        ("data.valid_episodes=[1.5]", r"data\.valid_episodes must be a list of an integer or a string or null"),
    ],
)
def test_out_of_range_values(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_policy_sections_are_validated_by_their_own_dataclasses() -> None:
    with pytest.raises(ConfigError, match="transform"):
        load_config(None, ["policy.view.transform=fft"])
    with pytest.raises(ConfigError, match="num_latents"):
        load_config(None, ["policy.perceiver.num_latents=0"])


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "steps: 10\noptim:\n  lr: [0.1, 0.2\nseed: 3\n")
    with pytest.raises(ConfigError, match="malformed YAML") as info:
        load_config(path)
    assert f"{path}:" in str(info.value)
    assert any(f"{path}:{line}:" in str(info.value) for line in (3, 4, 5))


def test_duplicate_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"duplicate key 'steps' \(line 2\)"):
        load_config(_write(tmp_path, "steps: 10\nsteps: 20\n"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/run.yaml")


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "steps: 10\noptim:\n  lr: 1e-3\n")  # 1e-3 without a dot is still a float
    config = load_config(
        path, ["optim.betas=[0.999,0.999]", "steps=30", "policy.view.transform=rfft", "data.image_key=rgb"]
    )
    assert config.optim.lr == pytest.approx(1e-3)
    assert isinstance(config.optim.lr, float)
    assert config.optim.betas == (0.999, 0.999)
    assert config.steps == 30
    assert config.policy.view.transform == "rfft"
    assert config.data.image_key == "rgb"


def test_override_parsing() -> None:
    assert parse_override("a.b=c") == (["a", "b"], "c")
    assert parse_override("x=[1, 2]") == (["x"], [1, 2])
    assert parse_override("x=2e-4") == (["x"], 2e-4)
    assert parse_override("grad_clip=null") == (["grad_clip"], None)
    with pytest.raises(ConfigError, match="key.subkey=value"):
        parse_override("steps")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"steps": 3}, ["steps.x=1"])


def test_nullable_field_accepts_null() -> None:
    assert load_config(None, ["optim.grad_clip=null"]).optim.grad_clip is None


def test_json_round_trip() -> None:
    config = load_config(CONFIGS / "reacher_cnn.yaml", ["optim.betas=[0.999,0.999]", "optim.grad_clip=null"])
    again = from_dict(json.loads(to_json(config)))
    assert again == config
    assert to_dict(again) == to_dict(config)
    assert isinstance(again.policy.cnn.channels, tuple)


def test_error_names_the_override_that_set_the_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"optim\.lr must be a number.*set by override 'optim\.lr=fast'"):
        load_config(CONFIGS / "tiny.yaml", ["steps=3", "optim.lr=fast"])


def test_absurd_learning_rate_is_a_config_error_not_an_optimizer_crash() -> None:
    from rvperceiver.errors import ConfigError
    from rvperceiver.train.config import load_config

    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_config(None, ["optim.lr=1e39"])


def test_key_names_old_and_new_agree_or_fail_saying_which_to_keep() -> None:
    old = load_config(None, ["data.image_key=agentview_image", "data.ee_key=robot0_eef_pos"])
    assert old.data.image_keys == () and old.data.target_key is None  # old configs mean what they meant
    new = load_config(None, ["data.image_keys=[agentview_image,wrist_image]", "data.target_key=action",
                             "data.state_keys=[joint_pos]", "data.streaming=true"])
    assert new.data.image_keys == ("agentview_image", "wrist_image") and new.data.target_key == "action"
    same = load_config(None, ["data.image_key=a", "data.image_keys=[a]", "data.ee_key=x", "data.target_key=x"])
    assert same.data.image_keys == ("a",)
    with pytest.raises(ConfigError, match="data.image_key 'a' and data.image_keys \\['b'\\] disagree; give image_keys only"):
        load_config(None, ["data.image_key=a", "data.image_keys=[b]"])
    with pytest.raises(ConfigError, match="data.ee_key 'x' and data.target_key 'action' disagree; give target_key only"):
        load_config(None, ["data.ee_key=x", "data.target_key=action"])
