"""End-to-end check of the behaviour-cloning study driver at toy size (3 demos, 3 steps, 2 closed-loop episodes)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from rvperceiver.errors import ConfigError, DataError
from rvperceiver.experiments.bc import (
    MODELS,
    PATCH_MODEL,
    PROFILES,
    BCProfile,
    _ensure_demos,
    _model_config,
    get_bc_profile,
    learned_models,
    run_bc_study,
)
from rvperceiver.views.tokenize import TokenLayout

TINY = BCProfile(
    name="tiny",
    n_demos=3,
    n_test_demos=1,
    t_obs=2,
    t_pred=4,
    steps=3,
    batch_size=4,
    seeds=(0,),
    perceiver={"num_latents": 4, "latent_channels": 8, "self_heads": 2, "self_layers_per_block": 1, "num_bands": 2},
    cnn={"channels": [4], "kernel_sizes": [3], "strides": [2], "num_keypoints": 4, "mlp_channels": 8, "mlp_layers": 1},
    warmup_steps=1,
    eval_episodes=2,
    image_size=16,
    valid_fraction=0.34,
    replan_every=2,
    strip_episodes=1,
    torch_threads=None,
    patch_perceiver=True,
)


@pytest.mark.slow
def test_tiny_study_writes_a_complete_table_and_json(tmp_path):
    results = run_bc_study(TINY, tmp_path / "bc")
    out = tmp_path / "bc"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["runs"] == json.loads(json.dumps(results["runs"]))
    assert on_disk["complete"] is True and "Incomplete" not in (out / "report.md").read_text()

    # Every learned model (with the patch-token diagnostic, which TINY asks for) has one run per seed, trained for
    # the same number of steps on the same demos.
    models = [r["model"] for r in on_disk["runs"]]
    assert sorted(models) == sorted((*MODELS, PATCH_MODEL))
    assert {r["steps"] for r in on_disk["runs"]} == {3}
    for run in on_disk["runs"]:
        assert 0.0 <= run["closed_loop"]["success_rate"] <= 1.0
        assert len(run["closed_loop"]["episodes"]) == 2
        assert run["closed_loop"]["episodes"][0]["seed"] == 100_000
        assert math.isfinite(run["test"]["ee_error_m"]) and run["test"]["ee_error_m"] > 0
        assert run["valid"]["verdict"] in ("collapsed", "partial", "learning")
        assert run["train_wall_s"] > 0

    # The adaptive row is, by construction, the run of the view it chose.
    adaptive = next(r for r in on_disk["runs"] if r["model"] == "spectral_adaptive")
    chosen = on_disk["adaptive_choice"]["chosen"]
    assert adaptive["same_run_as"] == ("raw_perceiver" if chosen == "raw" else "spectral_fourier")
    twin = next(r for r in on_disk["runs"] if r["model"] == adaptive["same_run_as"])
    assert adaptive["closed_loop"] == twin["closed_loop"]
    assert (out / "work" / "runs" / "spectral_adaptive_seed0" / "view_choice.json").exists()

    # The views really differ between the raw and the forced-Fourier Perceiver.
    views = {r["model"]: r["view"] for r in on_disk["runs"]}
    assert views["raw_perceiver"]["transform"] == "identity"
    assert views["spectral_fourier"]["transform"] == "rfft"
    assert views["cnn"]["token_mode"] == "pixel"
    assert views[PATCH_MODEL]["token_mode"] == "patch" and views[PATCH_MODEL]["transform"] == "identity"

    # References on the same seeds; the mean predictor's NMSE on held-out data is about 1 by definition.
    refs = on_disk["references"]
    assert len(refs["expert"]["closed_loop"]["episodes"]) == 2
    assert 0.0 <= refs["oracle"]["closed_loop"]["success_rate"] <= 1.0
    assert 0.5 < refs["mean_trajectory"]["test"]["nmse"] < 5.0

    report = (out / "report.md").read_text()
    for label in ("mean-trajectory predictor", "oracle ceiling", "raw scalar tokens", "forced Fourier", "CNN", "patch tokens"):
        assert label in report
    table = [line for line in report.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3 + len(MODELS) + 1  # header + references + learned models + the patch row
    assert table[-1].startswith("| Perceiver, raw 4×4 patch tokens")
    assert (out / "strips" / "raw_perceiver_seed0.png").exists()

    # Demos made with the study's settings are reused, not regenerated.
    reused = _ensure_demos(out / "work" / "data" / "demos.hdf5", 3, 0, TINY, TINY.valid_fraction, False)
    assert reused["reused"] is True


def test_existing_demos_made_otherwise_are_refused(tmp_path):
    from rvperceiver.sim.generate import generate_to_file

    data = tmp_path / "bc" / "work" / "data"
    data.mkdir(parents=True)
    generate_to_file(data / "demos.hdf5", 2, 7, image_size=16, progress=False, episode_steps=12)
    with pytest.raises(DataError, match="seed, episodes"):
        run_bc_study(dataclasses.replace(TINY, episode_steps=12), tmp_path / "bc")


def test_profiles_and_bad_arguments():
    assert get_bc_profile("quick") is PROFILES["quick"]
    assert len(PROFILES["full"].seeds) >= 3 and PROFILES["full"].steps > PROFILES["quick"].steps
    with pytest.raises(ConfigError, match="unknown bc profile 'medium'"):
        get_bc_profile("medium")
    with pytest.raises(ConfigError, match="seeds is empty"):
        run_bc_study(TINY, "unused-dir", seeds=[])


def test_long_profile_reuses_quick_demos_and_adds_only_the_patch_row():
    quick, long = PROFILES["quick"], PROFILES["long"]
    # Same demos (so a work directory holding quick's files is reused) and the same Perceiver, trained longer.
    for key in ("n_demos", "n_test_demos", "demo_seed", "test_seed", "image_size", "valid_fraction", "episode_steps"):
        assert getattr(long, key) == getattr(quick, key), key
    assert (long.t_obs, long.t_pred, long.batch_size, long.seeds) == (2, 8, 16, (0,))
    assert long.perceiver == quick.perceiver and long.steps > quick.steps
    # Quick trains exactly what its committed results show; long and full add the patch-token Perceiver.
    assert learned_models(quick) == ("cnn", "spectral_fourier", "raw_perceiver")
    assert PATCH_MODEL in learned_models(long) and PATCH_MODEL in learned_models(PROFILES["full"])
    assert get_bc_profile("long") is long


def test_patch_model_config_gives_512_tokens_of_48_values(tmp_path):
    long = PROFILES["long"]
    config = _model_config(PATCH_MODEL, long, tmp_path / "demos.hdf5", 0, tmp_path / "run")
    view = config.policy.view
    assert (view.token_mode, view.patch_size, view.transform, view.pre_norm) == ("patch", 4, "identity", "zscore")
    assert config.policy.backbone == "perceiver" and config.steps == long.steps
    raw = _model_config("raw_perceiver", long, tmp_path / "demos.hdf5", 0, tmp_path / "run")
    assert config.policy.perceiver == raw.policy.perceiver and config.optim.lr == raw.optim.lr
    layout = TokenLayout.from_input_shape((long.t_obs, long.image_size, long.image_size, 3), "patch", view.patch_size)
    assert (layout.num_tokens, layout.token_channels) == (512, 48)
    with pytest.raises(ConfigError, match="unknown model 'spectral_adaptive'"):
        _model_config("spectral_adaptive", long, tmp_path / "demos.hdf5", 0, tmp_path / "run")


def test_cli_accepts_long_for_bc_only(tmp_path, capsys):
    from rvperceiver.cli import build_parser, main

    assert build_parser().parse_args(["experiment", "bc", "--profile", "long", "--out", "x"]).profile == "long"
    assert main(["experiment", "theory", "--profile", "long", "--out", str(tmp_path / "theory")]) == 2
    assert "profile 'long' exists only for the bc experiment" in capsys.readouterr().err
    assert not (tmp_path / "theory").exists()
