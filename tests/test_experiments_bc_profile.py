"""Behaviour-cloning study profiles: bundled YAML files by name, one's own by path, bad ones in one line."""

from __future__ import annotations

import dataclasses

import pytest

from rvperceiver.errors import ConfigError
from rvperceiver.experiments.bc_profile import PROFILE_DIR, PROFILES, get_bc_profile, load_bc_profile, tier_state_keys


def test_bundled_profiles():
    assert set(PROFILES) == {"quick", "standard", "full"}
    assert PROFILES["full"].budgets == (300, 1500, 5000) and len(PROFILES["full"].seeds) >= 3
    assert PROFILES["standard"].eval_episodes == 200 and len(PROFILES["standard"].seeds) >= 3
    # The tier the seed's claim is decided on carries both views in the README's profile.
    assert {("arm-hidden-angles", "raw_perceiver"), ("arm-hidden-angles", "fourier_perceiver")} <= set(PROFILES["standard"].cells)
    assert all(isinstance(cell, tuple) for cell in PROFILES["standard"].cells)
    assert get_bc_profile("standard") is PROFILES["standard"]
    assert tier_state_keys("arm-hidden-angles") == ("robot0_joint_pos",) and tier_state_keys("fixed-start") == ()


def test_ones_own_profile_file_and_bad_ones(tmp_path):
    own = tmp_path / "mine.yaml"
    text = (PROFILE_DIR / "bc_quick.yaml").read_text()
    own.write_text(text.replace("name: quick", "name: mine").replace("n_demos: 20", "n_demos: 7"))
    assert get_bc_profile(str(own)).n_demos == 7 and get_bc_profile(str(own)).cells == PROFILES["quick"].cells
    own.write_text("name: mine\nbudget: [1]\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: unknown key 'budget': did you mean budgets\?"):
        load_bc_profile(own)
    own.write_text(text.replace("num_latents: 8", "num_latent: 8"))
    with pytest.raises(ConfigError, match=r"perceiver has unknown keys \['num_latent'\]; expected PerceiverConfig"):
        load_bc_profile(own)
    own.write_text(text.replace("batch_size: 8", "batch_size: eight"))
    with pytest.raises(ConfigError, match="mine.yaml: batch_size"):
        load_bc_profile(own)
    own.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="a bc profile must be a mapping"):
        load_bc_profile(own)
    with pytest.raises(ConfigError, match="nothere.yaml: cannot read the bc profile"):
        get_bc_profile("nothere.yaml")
    with pytest.raises(ConfigError, match="unknown bc profile 'huge'; expected one of full, quick, standard"):
        get_bc_profile("huge")


def test_a_profile_checks_its_tiers_models_and_budgets():
    quick = PROFILES["quick"]
    with pytest.raises(Exception, match="unknown tier 'arm'"):
        dataclasses.replace(quick, tiers=("arm",))
    with pytest.raises(ConfigError, match="unknown model 'mlp'"):
        dataclasses.replace(quick, cells=(("arm-hidden", "mlp"),))
    with pytest.raises(ConfigError, match="names a tier not in tiers"):
        dataclasses.replace(quick, cells=(("stock", "cnn"),))
    with pytest.raises(ConfigError, match="budgets must be increasing and distinct"):
        dataclasses.replace(quick, budgets=(60, 20))
