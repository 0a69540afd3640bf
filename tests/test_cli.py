"""CLI smoke tests through the real entry point: generate → train → eval/predict/stats/inspect → sim eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rvperceiver.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "demos.hdf5"
    code = main(["sim", "generate", "--episodes", "4", "--seed", "0", "--valid-fraction", "0.25",
                 "--out", str(path), "--quiet"])
    assert code == 0 and path.is_file()
    return path


@pytest.fixture(scope="module")
def run_dir(demos: Path) -> Path:
    out = demos.parent / "run"
    code = main(["train", "--config", TINY, f"data.path={demos}", "steps=4", "checkpoint_every=2",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out


def _json_out(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_every_command_has_help() -> None:
    commands = [["train"], ["eval"], ["predict"], ["stats"], ["inspect"], ["sim", "generate"], ["sim", "eval"],
                ["experiment"], ["demo"]]
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "rvperceiver.cli", *command, "--help"],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, (command, result.stderr)
        assert "usage: rvperceiver" in result.stdout


def test_train_writes_checkpoint_split_and_metrics(run_dir: Path, demos: Path) -> None:
    assert (run_dir / "checkpoint" / "model.safetensors").is_file()
    assert (run_dir / "checkpoint" / "config.json").is_file()
    split = json.loads((run_dir / "split.json").read_text())
    assert set(split["train"]).isdisjoint(split["valid"]) and len(split["train"]) + len(split["valid"]) == 4
    lines = (run_dir / "metrics.jsonl").read_text().strip().splitlines()
    assert any("nmse" in json.loads(line) for line in lines)


def test_train_refuses_existing_run_without_resume(run_dir: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--config", TINY, f"data.path={demos}", "steps=4", "--out", str(run_dir), "--quiet"])
    assert code == 2
    assert "--resume" in capsys.readouterr().err


def test_eval_reports_metrics_in_metres(run_dir: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(demos), "--split", "valid"]) == 0
    metrics = _json_out(capsys)
    assert metrics["split"] == "valid" and metrics["samples"] > 0
    assert metrics["verdict"] in {"collapsed", "partial", "learning"}
    assert np.isclose(metrics["rmse_m"] ** 2, metrics["mse_m"])
    assert 0.0 < metrics["rmse_m"] < 1.0  # metres in a 0.21 m reach, not normalised units


def test_predict_npz_and_refuses_to_overwrite(run_dir: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = demos.parent / "pred.npz"
    assert main(["predict", "--checkpoint", str(run_dir), "--data", str(demos), "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["prediction"].shape == data["target"].shape
        assert data["prediction"].shape[1:] == (4, 3)
        assert len(data["episode"]) == len(data["start"]) == len(data["prediction"])
    before = out.read_bytes()
    assert main(["predict", "--checkpoint", str(run_dir), "--data", str(demos), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_stats_and_inspect(demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--data", str(demos), "--max-samples", "32"]) == 0
    stats = _json_out(capsys)
    assert stats["chosen"] in stats["participation_ratio"]
    assert all(0.0 < v <= 1.0 for v in stats["participation_ratio"].values())
    assert main(["inspect", "--data", str(demos)]) == 0
    info = _json_out(capsys)
    assert info["format"] == "robomimic" and info["episodes"] == 4 and info["image_shape"] == [64, 64, 3]
    assert info["scalar_tokens_per_frame"] == 64 * 64 * 3


def test_sim_eval_runs_closed_loop(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "eval", "--checkpoint", str(run_dir), "--episodes", "1", "--quiet"]) == 0
    result = _json_out(capsys)
    assert 0.0 <= result["success_rate"] <= 1.0
    assert result["expert"]["success_rate"] == 1.0


def test_sim_eval_refuses_training_seeds(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "eval", "--checkpoint", str(run_dir), "--episodes", "1", "--seed", "2", "--quiet"]) == 2
    assert "overlap" in capsys.readouterr().err


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--data", str(tmp_path / "missing.hdf5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["inspect", "--data", str(demos), "--image-key", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "agentview_image" in err
    assert main(["train", "--config", TINY, f"data.path={demos}", "optim.lrr=1"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_parser_knows_every_documented_command() -> None:
    parser = build_parser()
    for argv in (["experiment", "theory", "--out", "x"], ["demo"], ["sim", "generate", "--out", "x.hdf5"]):
        assert parser.parse_args(argv).func is not None


def test_experiments_share_a_directory_but_do_not_overwrite_themselves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text(json.dumps([{"experiment": "theory", "record": "theory"}]))
    from rvperceiver.cli import _holds_results_of

    assert _holds_results_of(tmp_path, "theory")
    assert not _holds_results_of(tmp_path, "tiny-difference")
    assert main(["experiment", "theory", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_eval_and_predict_all_on_a_file_without_validation_episodes(run_dir: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    held_out = tmp_path / "held_out.hdf5"
    assert main(["sim", "generate", "--episodes", "2", "--seed", "500", "--valid-fraction", "0",
                 "--out", str(held_out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(held_out)]) == 0
    assert _json_out(capsys)["samples"] == 2 * (50 - 2 - 4 + 1)
    out = tmp_path / "pred.json"
    assert main(["predict", "--checkpoint", str(run_dir), "--data", str(held_out), "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 2 * (50 - 2 - 4 + 1)
