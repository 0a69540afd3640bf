"""Every class of bad input the tools reject, driven through the real CLI entry point where the CLI reaches it.

Each test is one row of docs/BAD_INPUT.md: the CLI must exit with status 2 and print ONE line on stderr that names
the thing (file, key, argument), what was expected and what came — never a traceback. Library-only inputs (tensors
handed to a policy) are checked on the library call. Rows covered by an existing unit test are pointed to in the
document instead of being repeated here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from rvperceiver import cli
from rvperceiver.data.episodes import Episode
from rvperceiver.data.robomimic import write_robomimic
from rvperceiver.errors import InputError
from rvperceiver.train import checkpoint as ckpt
from rvperceiver.train import run as run_module
from rvperceiver.train.checkpoint import load_policy, read_checkpoint_meta

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
QUIET = ("--quiet", "data.stats_cache=false")
pytestmark = pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")


def _episodes(n: int = 4, length: int = 12, width: int = 3, seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    return [
        Episode(
            f"demo_{i}",
            rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8),
            np.cumsum(rng.normal(size=(length, width)).astype(np.float32) * 0.01, axis=0),
        )
        for i in range(n)
    ]


def _raw_robomimic(path: Path, frames: list[np.ndarray], ees: list[np.ndarray]) -> Path:
    """A robomimic-layout file written with bare h5py, so it can hold what write_robomimic would refuse."""
    with h5py.File(path, "w") as handle:
        for i, (f, e) in enumerate(zip(frames, ees)):
            handle[f"data/demo_{i}/obs/agentview_image"] = f
            handle[f"data/demo_{i}/obs/robot0_eef_pos"] = e
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def _refused(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Run the CLI, check it refused with exit 2 and a one-line message, return the message."""
    code, err = _cli(capsys, *argv)
    assert code == cli.EXIT_USAGE, err
    lines = [line for line in err.splitlines() if line.strip() and "Warning" not in line and "warn" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"rvperceiver {argv[0]}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_robomimic(tmp_path_factory.mktemp("data") / "demos.hdf5", _episodes())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """A finished two-step run (checkpoint included); tests copy it before damaging it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert cli.main(["train", "--config", CONFIG, f"data.path={data}", "steps=2", *QUIET, "--out", str(out)]) == 0
    return out


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run", symlinks=True))


def _pretrained(run: Path) -> Path:
    return run / "checkpoints" / "last" / "pretrained_model"


def _edit_meta(run: Path, edit) -> None:
    path = _pretrained(run) / "config.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


# ---------------------------------------------------------------------------------------------------------------
# Files and keys
# ---------------------------------------------------------------------------------------------------------------


def test_missing_dataset_file(capsys, tmp_path: Path, trained: Path) -> None:
    missing = tmp_path / "nothing.hdf5"
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={missing}", *QUIET, "--out", tmp_path / "r")
    assert f"dataset path {missing} does not exist" in message
    message = _refused(capsys, "eval", "--checkpoint", trained, "--data", missing)
    assert f"dataset path {missing} does not exist" in message
    message = _refused(capsys, "train", "--config", tmp_path / "none.yaml")
    assert "none.yaml does not exist" in message


def test_missing_hdf5_key_names_it_and_lists_the_keys_present(capsys, data: Path, tmp_path: Path) -> None:
    message = _refused(capsys, "inspect", "--data", data, "--image-key", "wrist_image")
    assert "image key 'wrist_image' not found in" in message
    assert "obs keys present: ['agentview_image', 'robot0_eef_pos']" in message
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "data.ee_key=eef", *QUIET,
                       "--out", tmp_path / "r")
    assert "target key 'eef' not found" in message and "'robot0_eef_pos'" in message
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["observations"] = np.zeros(3)
    message = _refused(capsys, "inspect", "--data", foreign)
    assert "no 'data' group" in message and "top-level keys: ['observations']" in message


def test_truncated_hdf5_file(capsys, data: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "cut.hdf5"
    truncated.write_bytes(data.read_bytes()[:4000])
    message = _refused(capsys, "inspect", "--data", truncated)
    assert f"cannot open {truncated} as HDF5 (truncated, corrupt or not HDF5)" in message


def test_path_that_is_no_dataset(capsys, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    message = _refused(capsys, "inspect", "--data", tmp_path / "notes.txt")
    assert "cannot tell the format of" in message and ".hdf5/.h5" in message
    message = _refused(capsys, "inspect", "--data", tmp_path)
    assert "has no meta/info.json" in message


# ---------------------------------------------------------------------------------------------------------------
# Array contents
# ---------------------------------------------------------------------------------------------------------------


def test_image_of_wrong_dtype_rank_or_layout(capsys, tmp_path: Path) -> None:
    ee = np.zeros((12, 3), np.float32)
    floats = _raw_robomimic(tmp_path / "float.hdf5", [np.random.rand(12, 8, 8, 3).astype(np.float32) * 255], [ee])
    message = _refused(capsys, "inspect", "--data", floats)
    assert "image key 'agentview_image': expected uint8 frames of shape [L, H, W, C], got dtype float32" in message
    grey = _raw_robomimic(tmp_path / "rank3.hdf5", [np.zeros((12, 8, 8), np.uint8)], [ee])
    message = _refused(capsys, "inspect", "--data", grey)
    assert "expected uint8 frames of shape [L, H, W, C]" in message and "(12, 8, 8)" in message
    chw = _raw_robomimic(tmp_path / "chw.hdf5", [np.zeros((12, 3, 8, 8), np.uint8)], [ee])
    message = _refused(capsys, "inspect", "--data", chw)
    assert "channels-first data must be transposed" in message


def test_end_effector_of_wrong_width_or_rank(capsys, tmp_path: Path, trained: Path) -> None:
    frames = np.zeros((12, 8, 8, 3), np.uint8)
    mixed = _raw_robomimic(tmp_path / "mixed.hdf5", [frames, frames], [np.zeros((12, 3)), np.zeros((12, 4))])
    message = _refused(capsys, "inspect", "--data", mixed)
    assert "episode 'demo_1' has width 4 but episode 'demo_0' has width 3" in message
    cube = _raw_robomimic(tmp_path / "cube.hdf5", [frames], [np.zeros((12, 3, 2))])
    message = _refused(capsys, "inspect", "--data", cube)
    assert "target key 'robot0_eef_pos': expected a real array of shape [L, D]" in message
    wide = write_robomimic(tmp_path / "wide.hdf5", _episodes(width=4))
    message = _refused(capsys, "eval", "--checkpoint", trained, "--data", wide)
    assert "targets (4, 4)" in message and "expects frames (2, 8, 8, 3) and targets (4, 3)" in message


def test_non_finite_end_effector(capsys, tmp_path: Path) -> None:
    for bad in (np.nan, np.inf):
        ee = np.zeros((12, 3), np.float32)
        ee[5, 2] = bad
        path = _raw_robomimic(tmp_path / f"bad{bad}.hdf5", [np.zeros((12, 8, 8, 3), np.uint8)], [ee])
        message = _refused(capsys, "inspect", "--data", path)
        assert "contains NaN/Inf (first at step 5, dim 2)" in message


def test_non_finite_or_out_of_range_frames_given_to_a_policy(trained: Path) -> None:
    # Files can only hold uint8 frames (checked above); float frames reach a policy from Python code.
    policy, _ = load_policy(trained)
    frames = torch.rand(2, 2, 8, 8, 3)
    assert policy.predict(frames).shape == (2, 4, 3)  # floats in [0, 1] are fine
    with pytest.raises(InputError, match=r"looks like frames given as floats in \[0, 255\]"):
        policy.predict(frames * 255)
    frames[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match=r"contains 1 NaN/Inf value"):
        policy.predict(frames)
    with pytest.raises(InputError, match="shape"):
        policy.predict(torch.zeros(2, 2, 8, 8, 4))


# ---------------------------------------------------------------------------------------------------------------
# Episodes and splits
# ---------------------------------------------------------------------------------------------------------------


def test_episode_shorter_than_the_window(capsys, data: Path, tmp_path: Path) -> None:
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "data.t_obs=10", *QUIET,
                       "--out", tmp_path / "r")
    assert f"{data}, training split: episode 0 ('demo_0') has 12 steps, fewer than t_obs + t_pred" in message


def test_empty_split(capsys, tmp_path: Path) -> None:
    episodes = _episodes()
    path = write_robomimic(tmp_path / "masked.hdf5", episodes, splits={"train": [e.name for e in episodes]})
    with h5py.File(path, "a") as handle:
        handle["mask/valid"] = np.array([], dtype="S8")
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={path}", *QUIET, "--out", tmp_path / "r")
    assert f"{path}: split 'valid' is empty" in message


def test_single_episode_has_no_validation_split(capsys, tmp_path: Path) -> None:
    path = write_robomimic(tmp_path / "one.hdf5", _episodes(n=1))
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={path}", *QUIET, "--out", tmp_path / "r")
    assert f"{path}: only one episode ('demo_0'): no validation split is possible" in message


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


def test_unknown_config_key_suggests_the_nearest(capsys, tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("stepz: 3\n")
    assert "unknown key 'stepz': did you mean steps?" in _refused(capsys, "train", "--config", config)
    message = _refused(capsys, "train", "--config", CONFIG, "optim.lrr=0.1")
    assert "unknown key 'optim.lrr': did you mean optim.lr?" in message


def test_malformed_yaml_names_file_and_line(capsys, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("steps: 3\noptim: [1,\n")
    message = _refused(capsys, "train", "--config", config)
    assert f"{config}:3:1: malformed YAML" in message


def test_wrong_types_in_config_values(capsys, tmp_path: Path) -> None:
    message = _refused(capsys, "train", "--config", CONFIG, "batch_size=abc")
    assert "batch_size must be an integer, got 'abc' (str) (set by override 'batch_size=abc')" in message
    config = tmp_path / "types.yaml"
    config.write_text("optim:\n  betas: 0.9\n")
    message = _refused(capsys, "train", "--config", config)
    assert "optim.betas must be a list of 2 values (a number, a number), got 0.9 (float)" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("steps=0", "steps must be a positive integer, got 0"),
        ("batch_size=-4", "batch_size must be a positive integer, got -4"),
        ("data.t_obs=0", "data.t_obs must be a positive integer, got 0"),
        ("policy.perceiver.num_latents=0", "num_latents must be a positive integer, got 0"),
        ("data.valid_fraction=1.5", "data.valid_fraction must be in [0, 1), got 1.5"),
        ("optim.lr=-1", "optim.lr must be a positive number below float32's maximum, got -1.0"),
    ],
)
def test_negative_zero_or_out_of_range_sizes(capsys, override: str, expected: str) -> None:
    assert expected in _refused(capsys, "train", "--config", CONFIG, override)


def test_patch_size_that_does_not_divide_the_frame(capsys, data: Path, tmp_path: Path) -> None:
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "policy.view.token_mode=patch",
                       "policy.view.patch_size=3", *QUIET, "--out", tmp_path / "r")
    assert "patch_size 3 must divide the frame height 8 and width 8" in message


def test_overrides_may_come_after_the_options(capsys, data: Path, tmp_path: Path) -> None:
    code, err = _cli(capsys, "train", "--config", CONFIG, "--out", tmp_path / "r", f"data.path={data}", "--quiet",
                     "steps=1", "data.stats_cache=false")
    assert code == 0, err
    assert read_checkpoint_meta(tmp_path / "r")["step"] == 1
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error, also status 2
        cli.main(["train", "--config", CONFIG, "--bogus"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------


def test_missing_checkpoint_and_resume_without_one(capsys, data: Path, tmp_path: Path) -> None:
    message = _refused(capsys, "eval", "--checkpoint", tmp_path / "nowhere", "--data", data)
    assert "no checkpoint at" in message and "the path does not exist" in message
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", *QUIET, "--out", tmp_path / "new",
                       "--resume")
    assert "no checkpoint at" in message


def test_checkpoint_whose_config_does_not_match_its_weights(capsys, data: Path, trained: Path, tmp_path: Path) -> None:
    run = _copy_run(trained, tmp_path)
    _edit_meta(run, lambda meta: meta["policy"]["perceiver"].update(num_latents=16))
    message = _refused(capsys, "eval", "--checkpoint", run, "--data", data)
    assert "does not match the model described by config.json" in message and "wrong shape" in message


def test_resume_with_another_model_config(capsys, data: Path, trained: Path, tmp_path: Path) -> None:
    run = _copy_run(trained, tmp_path)
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "steps=3",
                       "policy.perceiver.num_latents=16", *QUIET, "--out", run, "--resume")
    assert "its policy config differs from the one of this run" in message
    assert "policy.perceiver.num_latents: checkpoint" in message and "this run 16" in message


def test_token_count_that_does_not_match_the_statistics(capsys, data: Path, trained: Path, tmp_path: Path) -> None:
    run = _copy_run(trained, tmp_path)
    _edit_meta(run, lambda meta: meta.update(input_shape=[2, 4, 4, 3]))  # 32 pixel tokens; the file holds 128
    message = _refused(capsys, "eval", "--checkpoint", run, "--data", data)
    assert "wrong shape" in message and "view.pre_mean (file (128, 3), model (32, 3))" in message


def test_corrupt_safetensors(capsys, data: Path, trained: Path, tmp_path: Path) -> None:
    run = _copy_run(trained, tmp_path)
    weights = _pretrained(run) / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    weights.write_bytes(bytes(blob))
    message = _refused(capsys, "eval", "--checkpoint", run, "--data", data)
    assert "model.safetensors is corrupt: its SHA-256 does not match the one recorded in config.json" in message
    # Garbage whose digest was (wrongly) recorded as well is still refused by the safetensors parser.
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    _edit_meta(run, lambda meta: meta["files"].pop("model.safetensors"))
    message = _refused(capsys, "eval", "--checkpoint", run, "--data", data)
    assert "model.safetensors is not a valid safetensors file" in message


def test_checkpoint_of_another_model_type(capsys, data: Path, trained: Path, tmp_path: Path) -> None:
    run = _copy_run(trained, tmp_path)
    _edit_meta(run, lambda meta: meta.update(type="othertool.Model"))
    message = _refused(capsys, "eval", "--checkpoint", run, "--data", data)
    assert "holds a model of type 'othertool.Model'; load_policy loads 'rvperceiver.Policy'" in message
    (_pretrained(run) / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    message = _refused(capsys, "predict", "--checkpoint", run, "--data", data, "--out", tmp_path / "p.npz")
    assert "is not an rvperceiver checkpoint" in message


# ---------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------


def test_existing_outputs_are_refused_unless_overwrite(capsys, data: Path, trained: Path, tmp_path: Path) -> None:
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", *QUIET, "--out", trained)
    assert "already holds a checkpoint; pass --resume to continue it or --overwrite" in message
    out = tmp_path / "metrics.json"
    out.write_text("{}")
    message = _refused(capsys, "eval", "--checkpoint", trained, "--data", data, "--out", out)
    assert f"output {out} already exists; pass --overwrite to replace it" in message
    assert out.read_text() == "{}"
    assert _cli(capsys, "eval", "--checkpoint", trained, "--data", data, "--out", out, "--overwrite")[0] == 0
    assert "nmse" in json.loads(out.read_text())
    message = _refused(capsys, "predict", "--checkpoint", trained, "--data", data, "--out", out)
    assert "already exists" in message


def test_overwrite_removes_the_old_checkpoint_before_training(capsys, data, trained, tmp_path, monkeypatch) -> None:
    # Left in place until the new run's first save, a kill in between plus --resume would continue the OLD run.
    run = _copy_run(trained, tmp_path)
    (run / "checkpoint.old").mkdir()  # leftovers of the version-1 layout go too
    seen = {}

    def spy(config, *args, **kwargs):
        seen["left"] = sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint"))
        raise InputError("stop here")

    monkeypatch.setattr(run_module, "train", spy)
    _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", *QUIET, "--out", run, "--overwrite")
    assert seen["left"] == []


def test_unwritable_output_directory_fails_before_reading_data(capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={tmp_path / 'absent.hdf5'}", *QUIET,
                       "--out", blocker / "run")
    assert f"out_dir {blocker / 'run'} is not writable" in message and "Not a directory" in message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory(capsys, data: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", *QUIET, "--out", locked / "run")
    finally:
        locked.chmod(0o700)
    assert "is not writable" in message and "Permission denied" in message


def test_disk_too_full_for_the_checkpoints(capsys, data: Path, tmp_path: Path, monkeypatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=1 << 20))
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", *QUIET, "--out", tmp_path / "r")
    assert "has 1.0 MiB free; checkpoints of this model need about" in message


def test_disk_filling_up_during_the_run_keeps_the_last_checkpoint(capsys, data, tmp_path, monkeypatch) -> None:
    real_write, calls = ckpt._write_bytes, {"n": 0}

    def write(path: Path, payload: bytes) -> str:
        calls["n"] += 1
        if calls["n"] > 5:  # the first checkpoint (5 files) fits, the second does not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(path, payload)

    monkeypatch.setattr(ckpt, "_write_bytes", write)
    out = tmp_path / "r"
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "steps=4", "checkpoint_every=2",
                       *QUIET, "--out", out)
    assert "cannot write the checkpoint of step 4" in message and "No space left on device" in message
    assert "the last good checkpoint (step 2) is kept; resume with --resume" in message
    monkeypatch.undo()
    assert read_checkpoint_meta(out)["step"] == 2 and not (out / "checkpoints" / "000004.tmp").exists()
    load_policy(out)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(capsys, data, tmp_path) -> None:
    # An absurd learning rate: step 1 moves every weight by ~1e30, step 2's forward pass overflows.
    out = tmp_path / "r"
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "optim.lr=1e30",
                       "schedule.warmup_steps=0", "optim.grad_clip=null", "checkpoint_every=1", *QUIET, "--out", out)
    assert "training diverged at step 2" in message and "last good checkpoint (step 1)" in message
    assert read_checkpoint_meta(out)["step"] == 1
    policy, _ = load_policy(out)
    assert all(bool(torch.isfinite(t).all()) for t in policy.state_dict().values() if t.is_floating_point())


def test_unreadable_view_choice_on_resume(capsys, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    (out / "checkpoints" / "000001").mkdir(parents=True)  # --resume needs a checkpoint; the view choice is read first
    (out / "view_choice.json").write_text('{"view": {"token_mode": "pixel", "transfrom": "rfft"}}')
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "view_choice=adaptive", *QUIET,
                       "--out", out, "--resume")
    assert "view_choice.json cannot be read back" in message
    assert "unknown key 'view.transfrom': did you mean view.transform?" in message


# ---------------------------------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------------------------------


def test_video_that_fails_to_decode(capsys, tmp_path: Path) -> None:
    from rvperceiver.data.lerobot import write_lerobot

    root = tmp_path / "lerobot"
    write_lerobot(root, _episodes(n=2, length=6))
    videos = sorted(root.glob("videos/**/*.mp4"))
    assert videos
    videos[0].write_bytes(b"\x00\x01 not a video " * 64)
    message = _refused(capsys, "inspect", "--data", root)
    assert "cannot decode video" in message and str(videos[0]) in message


def test_missing_low_dim_observation_key_lists_the_keys_present(capsys, data: Path, tmp_path: Path) -> None:
    message = _refused(capsys, "train", "--config", CONFIG, f"data.path={data}", "data.state_keys=[joint_pos]", *QUIET,
                       "--out", tmp_path / "r")
    assert f"{data}, training split: low-dim observation key 'joint_pos' not found in episode" in message
    assert "per-step keys present: [" in message


# ---------------------------------------------------------------------------------------------------------------
# Seed-claims study
# ---------------------------------------------------------------------------------------------------------------


def test_seed_study_profile_and_seed_list(capsys, tmp_path: Path) -> None:
    message = _refused(capsys, "experiment", "tiny-difference", "--profile", "huge", "--out", tmp_path / "o")
    assert message.endswith("profile 'huge' does not exist; expected one of quick, standard, full for tiny-difference")
    message = _refused(capsys, "experiment", "theory", "--seeds", "", "--out", tmp_path / "o")
    assert "seeds: the seed list is empty" in message
    message = _refused(capsys, "experiment", "theory", "--seeds", "0,1,1", "--out", tmp_path / "o")
    assert "seeds: the seed list repeats [1]; each seed may appear once" in message
    message = _refused(capsys, "experiment", "theory", "--seeds", "0,one", "--out", tmp_path / "o")
    assert "'one' is not an integer" in message
