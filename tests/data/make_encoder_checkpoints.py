"""Writes `tests/data/encoder_checkpoints/`: small trained Perceiver policies saved with `save_checkpoint`.

These checkpoints were written by the code at commit 612e32d, before the encoder's cross-attends could run in
the token width (the absorbed path). `tests/test_model_perceiver.py` loads them with today's code and checks
that the state-dict keys still fit and that every case predicts what it predicted then (to 1e-5). Re-running
this script with later code would defeat that purpose; it is kept to show how the files were made:

    PYTHONPATH=src python tests/data/make_encoder_checkpoints.py

Each case is trained for a few Adam steps on random data so that its LayerNorm gains and biases are no longer at
their initial values (every term of the key/value algebra then matters).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from rvperceiver.model.config import PerceiverConfig
from rvperceiver.model.policy import Policy, PolicyConfig
from rvperceiver.train.checkpoint import save_checkpoint
from rvperceiver.train.config import TrainConfig
from rvperceiver.views.view import ViewConfig

OUT = Path(__file__).resolve().parent / "encoder_checkpoints"
TINY = dict(num_latents=8, latent_channels=16, self_heads=2, self_layers_per_block=1, num_bands=2)

# name → (input shape (T, H, W, C), view config, perceiver config overrides)
CASES: dict[str, tuple[tuple[int, ...], ViewConfig, dict]] = {
    "scalar_joint": ((1, 4, 6, 3), ViewConfig(pre_norm="zscore"), {}),
    "scalar_rfft_values_heads2_repeat": (
        (1, 4, 6, 3),
        ViewConfig(pre_norm="centre", transform="complex", post_norm="zscore"),
        dict(kv_norm="values", cross_heads=2, num_cross_attends=2, cross_attention_channels=8),
    ),
    "patch_learned_joint_heads4": (
        (1, 4, 6, 3),
        ViewConfig(token_mode="patch", patch_size=2, pre_norm="zscore"),
        dict(position="learned", learned_position_channels=6, cross_heads=4),
    ),
    "pixel_nopos_joint": ((2, 4, 4, 3), ViewConfig(token_mode="pixel"), dict(position="none")),
    "scalar_nopos_values": ((1, 3, 4, 2), ViewConfig(), dict(position="none", kv_norm="values")),
}


def main() -> None:
    inputs: dict[str, torch.Tensor] = {}
    for index, (name, (shape, view, overrides)) in enumerate(CASES.items()):
        torch.manual_seed(100 + index)
        config = PolicyConfig(view=view, perceiver=PerceiverConfig(**{**TINY, **overrides}))
        policy = Policy(config, shape, (3, 2))
        x = torch.rand(24, *shape)
        y = torch.randn(24, 3, 2)
        policy.fit_statistics([x], y)
        optimiser = torch.optim.Adam(policy.parameters(), lr=3e-2)
        target = policy.target_norm.normalize(y)
        for _ in range(20):
            optimiser.zero_grad()
            (policy(x) - target).square().mean().backward()
            optimiser.step()
        policy.eval()
        probe = torch.rand(4, *shape, generator=torch.Generator().manual_seed(7 + index))
        with torch.no_grad():
            inputs[f"{name}.input"] = probe
            inputs[f"{name}.prediction"] = policy.predict(probe)
        save_checkpoint(OUT / name, policy, TrainConfig(policy=config, out_dir=""), step=20)
    save_file(inputs, str(OUT / "probes.safetensors"), metadata={"written_by_commit": "612e32d"})


if __name__ == "__main__":
    main()
