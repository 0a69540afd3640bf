"""End-to-end check of the behaviour-cloning study driver at toy size (3 demos, 3 steps, 2 closed-loop episodes)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from rvperceiver.errors import ConfigError, DataError
from rvperceiver.experiments.bc import MODELS, PROFILES, BCProfile, _ensure_demos, get_bc_profile, run_bc_study

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
)


@pytest.mark.slow
def test_tiny_study_writes_a_complete_table_and_json(tmp_path):
    results = run_bc_study(TINY, tmp_path / "bc")
    out = tmp_path / "bc"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["runs"] == json.loads(json.dumps(results["runs"]))
    assert on_disk["complete"] is True and "Incomplete" not in (out / "report.md").read_text()

    # Every learned model has one run per seed, trained for the same number of steps on the same demos.
    models = [r["model"] for r in on_disk["runs"]]
    assert sorted(models) == sorted(MODELS)
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

    # References on the same seeds; the mean predictor's NMSE on held-out data is about 1 by definition.
    refs = on_disk["references"]
    assert len(refs["expert"]["closed_loop"]["episodes"]) == 2
    assert 0.0 <= refs["oracle"]["closed_loop"]["success_rate"] <= 1.0
    assert 0.5 < refs["mean_trajectory"]["test"]["nmse"] < 5.0

    report = (out / "report.md").read_text()
    for label in ("mean-trajectory predictor", "oracle ceiling", "raw scalar tokens", "forced Fourier", "CNN"):
        assert label in report
    table = [line for line in report.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3 + len(MODELS)  # header + references + learned models
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
