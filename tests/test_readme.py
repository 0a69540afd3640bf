"""The README's usage example runs as written, and its first lines give the two commands CI relies on."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
CI = Path(__file__).resolve().parents[1] / ".ci" / "run"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_usage_example_runs(capsys) -> None:
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert tuple(namespace["prediction"].shape) == (2, 8, 3)
    assert namespace["choice"].chosen == "fourier"
    assert namespace["loss"].grad_fn is not None
    assert "fourier" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    test_line = next(line for line in lines[:8] if "pytest" in line)
    command = test_line.split("#")[0].strip()
    assert command in CI.read_text(encoding="utf-8").splitlines()


def test_environment_loop_example_runs_a_trained_checkpoint(tmp_path) -> None:
    """The README's own-loop example, on a checkpoint trained here for a few steps on 64x64 Reacher demos."""
    from rvperceiver.data.windows import WindowDataset
    from rvperceiver.sim import generate_demos
    from rvperceiver.train import load_config, train

    demos = generate_demos(2, seed=0, image_size=64)
    windows = WindowDataset(demos, 2, 8)
    config = load_config(
        Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml",
        ["data.t_pred=8", "steps=2", "eval_every=2", "checkpoint_every=2", "policy.backbone=cnn",
         "policy.view.transform=identity", "policy.view.pre_norm=zscore", "policy.view.post_norm=none"],
    )
    train(config, windows, None, out_dir=tmp_path / "run", progress=False)
    block = next(b for b in _python_blocks(README.read_text(encoding="utf-8")) if "select_action" in b)
    assert len([line for line in block.splitlines() if line.strip()]) <= 10
    assert '"runs/reacher/' in block
    namespace: dict = {}
    exec(compile(block.replace('"runs/reacher/', f'"{tmp_path / "run"}/'), "README.md", "exec"), namespace)
    assert namespace["step"] == 49 and namespace["setpoint"].shape == (3,)
    assert namespace["observation"].shape == (10,)  # Reacher-v5's own observation: a plain Gymnasium step
    namespace["env"].close()
