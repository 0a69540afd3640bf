"""README sentences about behaviour, each checked against what the tools do.

Every test quotes the README sentence it checks and first asserts that the sentence is still in the README, so a
README edit that changes a promise fails here until the test is changed with it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rvperceiver import cli
from rvperceiver.data.episodes import Episode
from rvperceiver.data.robomimic import write_robomimic

ROOT = Path(__file__).resolve().parents[1]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())  # line breaks do not matter
TINY = str(ROOT / "configs" / "tiny.yaml")
QUIET = ["--quiet", "data.stats_cache=false"]
pytestmark = pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")


def says(sentence: str) -> None:
    """The README makes this statement (whitespace-insensitive)."""
    assert " ".join(sentence.split()) in README, f"README no longer says: {sentence!r}"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    episodes = [
        Episode(f"demo_{i}", rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8),
                np.cumsum(rng.normal(size=(12, 3)).astype(np.float32) * 0.01, axis=0))
        for i in range(4)
    ]
    return write_robomimic(tmp_path_factory.mktemp("readme") / "demos.hdf5", episodes)


def _train(data: Path, out: Path, *extra: str) -> int:
    return cli.main(["train", "--config", TINY, f"data.path={data}", "steps=2", *QUIET, *extra, "--out", str(out)])


def test_every_command_has_help_with_meanings_and_defaults() -> None:
    says("Every command has `--help`, which gives every option's meaning and default.")
    result = subprocess.run([sys.executable, "-m", "rvperceiver.cli", "sim", "eval", "--help"],
                            capture_output=True, text=True, check=True)
    assert "(default: 100000)" in result.stdout and "(default: 4)" in result.stdout


def test_errors_are_one_line_with_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    says("Errors are one line on stderr with exit status 2")
    assert cli.main(["inspect", "--data", str(tmp_path / "missing.hdf5")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_existing_output_files_are_refused(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    says("Output files that exist are refused unless `--overwrite`.")
    out = tmp_path / "stats.json"
    out.write_text("{}")
    assert cli.main(["stats", "--data", str(data), "--max-samples", "8", "--out", str(out)]) == 2
    assert out.read_text() == "{}"
    assert cli.main(["stats", "--data", str(data), "--max-samples", "8", "--out", str(out), "--overwrite"]) == 0
    assert "participation_ratio" in json.loads(out.read_text())


def test_runs_never_mix(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    says("Runs never mix: a run directory that is not empty is refused unless `--resume` (continue it) or "
         "`--overwrite` (delete the old run's outputs first)")
    run = tmp_path / "run"
    assert _train(data, run) == 0
    assert _train(data, run) == 2
    assert _train(data, run, "steps=3", "--resume") == 0
    assert _train(data, run, "--overwrite") == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2  # the resumed run's step 3 went with the old outputs


def test_a_failed_start_leaves_nothing(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    says("`--resume` without a checkpoint is refused before anything is made; a run that fails before its first "
         "checkpoint removes the directory it created")
    assert _train(data, tmp_path / "a", "--resume") == 2 and not (tmp_path / "a").exists()
    assert _train(data, tmp_path / "b", "data.t_obs=20") == 2 and not (tmp_path / "b").exists()


def test_impossible_schedules_are_refused(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    says("a warm-up longer than the run, or an `eval_every` larger than `steps`, is refused with the reason.")
    assert _train(data, tmp_path / "w", "schedule.warmup_steps=3") == 2
    assert "longer than the run" in capsys.readouterr().err
    assert _train(data, tmp_path / "e", "eval_every=3") == 2
    assert "larger than the run" in capsys.readouterr().err


def test_every_run_directory_gets_a_learning_curve(data: Path, tmp_path: Path) -> None:
    says("| learning curve (training and validation loss, validation NMSE against 1.0 = the mean, learning rate) | "
         "`RUN/learning_curve.png` | every `train` run, at its end |")
    assert _train(data, tmp_path / "r") == 0
    assert (tmp_path / "r" / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_config_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    says("`rvperceiver train --show-config` lists every key.")
    says("Unknown keys fail with the nearest known key suggested;")
    assert cli.main(["train", "--show-config", "--config", TINY]) == 0
    shown = capsys.readouterr().out
    for key in ("valid_episodes:", "warmup_steps:", "eval_every:", "stats_cache:", "num_latents:"):
        assert key in shown
    assert cli.main(["train", "--show-config", "--config", TINY, "optim.lrr=1"]) == 2
    assert "did you mean optim.lr?" in capsys.readouterr().err


def test_the_split_and_the_statistics_cache_are_announced(data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    says("The run prints which one decided and records it in `RUN/split.json`.")
    says("Fitted view statistics are cached in `<data>.rvstats/` beside the dataset (the run prints the path;")
    out = tmp_path / "r"
    assert cli.main(["train", "--config", TINY, f"data.path={data}", "steps=1", "data.valid_fraction=0.25",
                     "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "a seeded draw (data.valid_fraction" in err
    assert re.search(r"statistics cache: \S*demos\.hdf5\.rvstats", err)
    assert json.loads((out / "split.json").read_text())["decided_by"] == "valid_fraction"


def test_same_machine_same_threads_is_bit_for_bit(data: Path, tmp_path: Path) -> None:
    says("On the same machine with the same thread count the same command gives the same numbers bit for bit")
    weights = []
    for name in ("a", "b"):
        assert _train(data, tmp_path / name, "steps=3") == 0
        from safetensors.torch import load_file

        weights.append(load_file(tmp_path / name / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_every_config_the_readme_names_loads_and_can_run_its_schedule() -> None:
    from rvperceiver.train.config import check_schedule, load_config

    names = sorted(set(re.findall(r"configs/([a-z_]+\.yaml)", README)))
    assert "reacher_cpu.yaml" in names and "reacher_spectral.yaml" in names
    for name in names:
        config = load_config(ROOT / "configs" / name)
        check_schedule(config)  # the schedule and evaluation cadence fit within steps
    says("**`configs/reacher_cpu.yaml`, sized for 2 CPU cores**")
    cpu = load_config(ROOT / "configs" / "reacher_cpu.yaml")
    assert cpu.policy.backbone == "cnn" and cpu.steps == 2000 and cpu.torch_threads == 1
