"""What one behaviour-cloning study runs: :class:`BCProfile`, read from YAML (the bundled ``profiles/bc_*.yaml``
or one's own file), and the low-dim keys each tier gives the policy."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvperceiver.errors import ConfigError
from rvperceiver.experiments.bc_models import MODEL_VIEWS

__all__ = ["BCProfile", "PROFILES", "PROFILE_DIR", "get_bc_profile", "load_bc_profile", "tier_state_keys"]


@dataclass(frozen=True)
class BCProfile:
    """Sizes of one study.

    ``cells`` lists the (tier, model) pairs trained, cheapest first; every cell is trained on every seed and
    scored at every budget in ``budgets`` (stops of one run). ``perceiver`` and ``cnn`` override the backbones'
    configs; ``steps`` per budget and ``batch_size`` are the same for every model. ``cut`` says, in words, what
    a profile leaves out of the issue's full grid and why.
    """

    name: str
    tiers: tuple[str, ...]
    cells: tuple[tuple[str, str], ...]
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    n_demos: int
    n_test_demos: int
    t_obs: int
    t_pred: int
    execute: int
    batch_size: int
    perceiver: dict[str, Any]
    cnn: dict[str, Any]
    perceiver_lr: float = 5e-4
    cnn_lr: float = 1e-3
    warmup_steps: int = 50
    eval_episodes: int = 200
    eval_seed: int = 100_000
    demo_seed: int = 0
    test_seed: int = 200_000
    image_size: int = 64
    valid_fraction: float = 0.1
    torch_threads: int | None = None
    strip_episodes: int = 4
    episode_steps: int = 50
    state_only_steps: int = 3000
    cut: str = ""

    def __post_init__(self) -> None:
        from rvperceiver.model.config import CNNConfig, PerceiverConfig
        from rvperceiver.sim.tiers import get_tier

        for section, config in (("perceiver", PerceiverConfig), ("cnn", CNNConfig)):
            known = {f.name for f in dataclasses.fields(config)}
            unknown = sorted(set(getattr(self, section)) - known)
            if unknown:
                raise ConfigError(f"bc profile {self.name!r}: {section} has unknown keys {unknown}; expected "
                                  f"{config.__name__} fields: {', '.join(sorted(known))}")
        for tier in self.tiers:
            get_tier(tier)
        for tier, model in self.cells:
            if tier not in self.tiers:
                raise ConfigError(f"bc profile {self.name!r}: cell ({tier}, {model}) names a tier not in tiers {self.tiers}")
            if model not in MODEL_VIEWS:
                raise ConfigError(f"bc profile {self.name!r}: unknown model {model!r}; expected one of {', '.join(MODEL_VIEWS)}")
        if not self.budgets or list(self.budgets) != sorted(set(self.budgets)):
            raise ConfigError(f"bc profile {self.name!r}: budgets must be increasing and distinct, got {self.budgets}")
        if not self.seeds:
            raise ConfigError(f"bc profile {self.name!r}: seeds is empty; give at least one training seed")


PROFILE_DIR = Path(__file__).with_name("profiles")
"""The bundled profiles, one YAML file each (``bc_<name>.yaml``): data, not code, so a user's own profile is a copy."""


def load_bc_profile(path: str | os.PathLike[str]) -> BCProfile:
    """A :class:`BCProfile` from a YAML file; an unknown key, a wrong type or a bad value is one line naming it."""
    from rvperceiver.config_schema import build
    from rvperceiver.train.config import parse_yaml

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{source}: cannot read the bc profile ({error.strerror or error})") from None
    raw = parse_yaml(text, str(source))
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a bc profile must be a mapping of BCProfile fields, got {type(raw).__name__}")
    try:
        return build(BCProfile, raw)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _bundled_profiles() -> dict[str, BCProfile]:
    profiles = {}
    for path in sorted(PROFILE_DIR.glob("bc_*.yaml")):
        profile = load_bc_profile(path)
        if f"bc_{profile.name}" != path.stem:
            raise ConfigError(f"{path}: name {profile.name!r} does not match the file name (expected bc_<name>.yaml)")
        profiles[profile.name] = profile
    return profiles


PROFILES: dict[str, BCProfile] = _bundled_profiles()


def get_bc_profile(name: str) -> BCProfile:
    """A bundled profile by name (``quick``, ``standard``, ``full``), or a profile YAML file by path."""
    if name in PROFILES:
        return PROFILES[name]
    if str(name).endswith((".yaml", ".yml")) or Path(name).is_file():
        return load_bc_profile(name)
    raise ConfigError(f"unknown bc profile {name!r}; expected one of {', '.join(PROFILES)} or a profile YAML file")


def tier_state_keys(tier: str) -> tuple[str, ...]:
    """The low-dim observation keys the tier gives the policy (empty: frames only)."""
    from rvperceiver.sim.tiers import get_tier

    return get_tier(tier).state_keys
