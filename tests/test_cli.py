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
    assert (run_dir / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").is_file()
    assert (run_dir / "checkpoints" / "last" / "pretrained_model" / "config.json").is_file()
    split = json.loads((run_dir / "split.json").read_text())
    assert set(split["train"]).isdisjoint(split["valid"]) and len(split["train"]) + len(split["valid"]) == 4
    lines = (run_dir / "metrics.jsonl").read_text().strip().splitlines()
    assert any("nmse" in json.loads(line) for line in lines)


def test_train_refuses_existing_run_without_resume(run_dir: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--config", TINY, f"data.path={demos}", "steps=4", "--out", str(run_dir), "--quiet"])
    assert code == 2
    assert "--resume" in capsys.readouterr().err


def test_eval_reports_metrics_in_metres(run_dir: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(demos), "--split", "valid", "--json"]) == 0
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


def test_sim_eval_runs_closed_loop(run_dir: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_dir.parent / "sim_eval.json"
    assert main(["sim", "eval", "--checkpoint", str(run_dir), "--episodes", "1", "--quiet", "--out", str(out),
                 "--demos", str(demos)]) == 0
    summary = capsys.readouterr().out
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["offline"]["samples"] > 0 and result["offline"]["nmse"] > 0 and "NMSE" in summary
    assert 0.0 <= result["success_rate"] <= 1.0
    assert result["settings"]["tier"] == "stock" and result["settings"]["execute"] == 4
    assert result["references"]["expert"]["success_rate"] == 1.0
    assert result["references"]["oracle"]["success_rate"] == 1.0  # setpoint labels: the oracle reproduces the demos
    # A short human summary on stdout, not the JSON: success with its interval, distances, the references.
    assert len(summary.splitlines()) <= 9 and not summary.lstrip().startswith("{")
    assert "95% CI" in summary and "mm" in summary and "expert" in summary and "mean predictor" in summary
    assert str(out) in summary
    # Run again into the same file: refused before any rollout, the first record kept.
    assert main(["sim", "eval", "--checkpoint", str(run_dir), "--episodes", "1", "--quiet", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_eval_prints_a_summary_and_writes_the_json(run_dir: Path, demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_dir.parent / "eval.json"
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(demos), "--out", str(out), "--quiet"]) == 0
    summary = capsys.readouterr().out
    metrics = json.loads(out.read_text(encoding="utf-8"))
    assert f"NMSE {metrics['nmse']:.3f}" in summary and "mm" in summary and metrics["verdict"] in summary
    assert "\\u" not in out.read_text(encoding="utf-8")


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
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(held_out), "--json"]) == 0
    assert _json_out(capsys)["samples"] == 2 * (50 - 2 - 4 + 1)
    out = tmp_path / "pred.json"
    assert main(["predict", "--checkpoint", str(run_dir), "--data", str(held_out), "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 2 * (50 - 2 - 4 + 1)


def test_show_config_prints_every_key_resolved(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from rvperceiver.config_schema import known_keys
    from rvperceiver.train.config import TrainConfig

    assert main(["train", "--show-config", "--config", TINY, "steps=7", "optim.lr=0.01"]) == 0
    text = capsys.readouterr().out
    shown = yaml.safe_load(text)
    assert shown["steps"] == 7 and shown["optim"]["lr"] == 0.01 and shown["batch_size"] == 8

    def paths(node: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in node.items():
            out.add(prefix + key)
            if isinstance(value, dict):
                out |= paths(value, prefix + key + ".")
        return out

    assert paths(shown) == set(known_keys(TrainConfig))  # every key of the schema, nothing else


def test_every_option_says_what_it_means_and_its_default() -> None:
    parser = build_parser()

    def walk(p):
        yield p
        for action in p._actions:
            if isinstance(action, type(parser._subparsers._group_actions[0])):
                for child in action.choices.values():
                    yield from walk(child)

    for p in walk(parser):
        for action in p._actions:
            if action.dest in ("help", "command", "sim_command"):
                continue
            assert action.help, f"{p.prog} {action.option_strings or action.dest}: no help"
            help_text = p.formatter_class(p.prog)._get_help_string(action)
            has_value = action.nargs != 0 and action.default not in (None, [])
            if has_value and action.option_strings:
                assert "default" in help_text, f"{p.prog} {action.option_strings}: no default shown"


def test_a_non_empty_out_is_refused_and_a_failed_start_leaves_nothing(demos: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 1.0}\n')
    (stale / "notes.txt").write_text("mine")
    args = ["train", "--config", TINY, f"data.path={demos}", "steps=2", "--quiet"]
    assert main([*args, "--out", str(stale)]) == 2
    assert "not empty" in capsys.readouterr().err and (stale / "metrics.jsonl").read_text().startswith('{"kind"')
    # --overwrite deletes the old run's outputs (not the user's other files) and starts a clean run.
    assert main([*args, "--out", str(stale), "--overwrite"]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in (stale / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "start" and (stale / "notes.txt").read_text() == "mine"
    assert (stale / "learning_curve.png").is_file()
    # --resume where there is nothing to resume: refused, and no directory is made.
    missing = tmp_path / "missing"
    assert main([*args, "--out", str(missing), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err and not missing.exists()
    # A start that fails after the directory was made (a key the data lacks) removes it again.
    failed = tmp_path / "failed"
    assert main([*args, "data.ee_key=nope", "--out", str(failed)]) == 2
    assert "nope" in capsys.readouterr().err and not failed.exists()


@pytest.mark.parametrize("override, said", [
    ("schedule.warmup_steps=50", "schedule.warmup_steps=50 is longer than the run (steps=10)"),
    ("eval_every=11", "eval_every=11 is larger than the run (steps=10)"),
])
def test_a_schedule_that_cannot_happen_is_refused(demos: Path, tmp_path: Path, override: str, said: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["train", "--config", TINY, f"data.path={demos}", "steps=10", override, "--out", str(out),
                 "--quiet"]) == 2
    assert said in capsys.readouterr().err and not out.exists()


def test_inspect_without_keys_lists_the_candidates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import h5py

    path = tmp_path / "other_keys.hdf5"
    with h5py.File(path, "w") as handle:
        for i in range(2):
            handle[f"data/demo_{i}/obs/front_rgb"] = np.zeros((5, 16, 16, 3), np.uint8)
            handle[f"data/demo_{i}/obs/gripper_pos"] = np.zeros((5, 3), np.float32)
            handle[f"data/demo_{i}/obs/joint_vel"] = np.zeros((5, 9), np.float32)
    assert main(["inspect", "--data", str(path)]) == 0
    listing = _json_out(capsys)
    assert listing["image_key_candidates"] == ["front_rgb"] and listing["ee_key_candidates"] == ["gripper_pos"]
    assert {"key": "front_rgb", "shape": [16, 16, 3], "dtype": "uint8"} in listing["keys"]
    assert "--image-key" in listing["note"]
    # With the right keys it describes the data as usual.
    assert main(["inspect", "--data", str(path), "--image-key", "front_rgb", "--ee-key", "gripper_pos"]) == 0
    assert _json_out(capsys)["episodes"] == 2


def test_validation_episodes_can_be_named_by_name_or_position(demos: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for value, expected in (("[demo_2]", ["demo_2"]), ("[0,3]", ["demo_0", "demo_3"])):
        out = tmp_path / f"r{len(expected)}"
        assert main(["train", "--config", TINY, f"data.path={demos}", "steps=1", f"data.valid_episodes={value}",
                     "--out", str(out)]) == 0
        err = capsys.readouterr().err
        split = json.loads((out / "split.json").read_text())
        assert split["valid"] == expected and split["decided_by"] == "valid_episodes"
        assert "named by data.valid_episodes" in err
    # Without it, the file's own mask decides, and the run says so.
    out = tmp_path / "masked"
    assert main(["train", "--config", TINY, f"data.path={demos}", "steps=1", "--out", str(out)]) == 0
    assert "file's own train/valid split (it wins over data.valid_fraction)" in capsys.readouterr().err
    assert json.loads((out / "split.json").read_text())["decided_by"] == "file"
    assert main(["train", "--config", TINY, f"data.path={demos}", "steps=1", "data.valid_episodes=[demo_9]",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "data.valid_episodes names 'demo_9', which is not an episode here" in err and "positions 0..3" in err


def test_predict_streams_json_in_batches(run_dir: Path, demos: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.npz"
    assert main(["predict", "--checkpoint", str(run_dir), "--data", str(demos), "--out", str(whole),
                 "--batch-size", "64", "--quiet"]) == 0
    small = tmp_path / "small.json"
    assert main(["predict", "--checkpoint", str(run_dir), "--data", str(demos), "--out", str(small),
                 "--batch-size", "3", "--quiet"]) == 0
    with np.load(whole, allow_pickle=False) as data:
        records = json.loads(small.read_text())
        assert len(records) == len(data["prediction"])
        assert np.allclose([r["prediction"] for r in records], data["prediction"], atol=1e-5)
        assert [r["episode"] for r in records] == data["episode"].tolist()


def test_experiment_merge_is_for_bc_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["experiment", "tiny-difference", "--merge", str(tmp_path / "a"), "--out", str(tmp_path / "o")])
    assert code == 2 and "--merge exists only for the bc experiment" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()
