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
