"""`rvperceiver convert`: robomimic HDF5 <-> LeRobot v3, keys and splits kept, atomic, bad input refused.

Round trips on the shared LeRobot fixture (written by LeRobot's own code) and on a small generated Reacher
file: low-dimensional data comes back bit-identical, frames exactly with PNG storage and within the codec's
measured error through video (``benchmarks/bench_convert.py`` measures it: mean absolute error 1.1/255 for H.264
on 64 px Reacher frames; the bound below leaves room for the 32 px frames used here).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import h5py
import numpy as np
import pytest

from rvperceiver import cli
from rvperceiver.data import convert as convert_module
from rvperceiver.data.convert import ConvertConfig, convert_dataset
from rvperceiver.data.lerobot import read_lerobot
from rvperceiver.data.lerobot import writer as lerobot_writer
from rvperceiver.data.robomimic import read_robomimic
from rvperceiver.errors import InputError
from rvperceiver.sim.generate import generate_to_file
from test_data_robomimic_layout import assert_robomimic_layout

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lerobot_v30_reacher"
REFERENCE = FIXTURE.parent / "lerobot_v30_reacher_reference.npz"
needs_fixture = pytest.mark.skipif(not FIXTURE.is_dir(), reason="the shared LeRobot fixture is not beside the repo")
VIDEO_MEAN_ERROR_BOUND = 2.5  # /255, H.264 crf 18 on 32 px Reacher frames (measured ~1.5)


@pytest.fixture(scope="module")
def reacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reacher") / "reacher.hdf5"
    generate_to_file(path, n_episodes=3, seed=21, image_size=32, valid_fraction=0.3, progress=False)
    return path


def convert(source: Path, to: str, out: Path, **options) -> convert_module.ConversionResult:
    return convert_dataset(ConvertConfig(source, to, out, progress=False, **options))


def assert_low_dim_identical(original_path: Path, back_path: Path) -> None:
    original, back = read_robomimic(original_path), read_robomimic(back_path)
    assert back.names == original.names and back.splits == original.splits
    for a, b in zip(original, back):
        np.testing.assert_array_equal(b.ee, a.ee)
        assert set(b.extras) == set(a.extras)
        for key, value in a.extras.items():
            assert b.extras[key].dtype == value.dtype and b.extras[key].shape == value.shape, key
            np.testing.assert_array_equal(b.extras[key], value)


# ----- round trips -------------------------------------------------------------------------------------------


def test_reacher_round_trip_through_lerobot_video(reacher: Path, tmp_path: Path) -> None:
    result = convert(reacher, "lerobot", tmp_path / "lerobot", verify=True)
    assert result.keys["agentview_image"] == "observation.images.top"
    assert result.keys["robot0_eef_pos"] == "observation.state"
    assert result.keys["actions"] == "action" and result.keys["rewards"] == "next.reward"
    assert result.keys["robot0_joint_pos"] == "observation.robot0_joint_pos"
    assert result.splits == {"train": 2, "valid": 1}
    assert result.verification["low_dim_equal"]
    info = json.loads((tmp_path / "lerobot/meta/info.json").read_text())
    assert info["fps"] == 50 and info["splits"] == {"train": "0:2", "valid": "2:3"}
    dataset = read_lerobot(tmp_path / "lerobot")
    assert dataset.splits == {"train": dataset.names[:2], "valid": dataset.names[2:]}

    back = convert(tmp_path / "lerobot", "robomimic", tmp_path / "back.hdf5", verify=True)
    assert back.keys["observation.images.top"] == "agentview_image"
    assert_low_dim_identical(reacher, tmp_path / "back.hdf5")
    assert_robomimic_layout(tmp_path / "back.hdf5", ["agentview_image", "robot0_eef_pos", "target_pos"])
    original, returned = read_robomimic(reacher), read_robomimic(tmp_path / "back.hdf5")
    errors = [np.abs(a.frames.astype(np.int16) - b.frames.astype(np.int16)).mean() for a, b in zip(original, returned)]
    assert 0 < max(errors) < VIDEO_MEAN_ERROR_BOUND
    assert result.verification["frame_mean_abs_error"] == pytest.approx(float(np.mean(errors)), rel=1e-6)


def test_reacher_round_trip_with_image_storage_is_exact(reacher: Path, tmp_path: Path) -> None:
    convert(reacher, "lerobot", tmp_path / "png", image_storage="image")
    assert json.loads((tmp_path / "png/meta/info.json").read_text())["features"]["observation.images.top"]["dtype"] == "image"
    convert(tmp_path / "png", "robomimic", tmp_path / "back.hdf5")
    assert_low_dim_identical(reacher, tmp_path / "back.hdf5")
    for a, b in zip(read_robomimic(reacher), read_robomimic(tmp_path / "back.hdf5")):
        np.testing.assert_array_equal(b.frames, a.frames)


@needs_fixture
def test_fixture_to_robomimic_holds_lerobots_frames_exactly(tmp_path: Path) -> None:
    result = convert(FIXTURE, "robomimic", tmp_path / "fixture.hdf5")
    assert result.keys == {"observation.images.top": "agentview_image", "observation.state": "robot0_eef_pos",
                           "action": "actions"}
    reference = np.load(REFERENCE, allow_pickle=False)
    dataset = read_robomimic(tmp_path / "fixture.hdf5")
    assert dataset.splits == {"train": dataset.names} and dataset.lengths == [50] * 4
    np.testing.assert_array_equal(np.concatenate([e.frames for e in dataset]), reference["lerobot_decoded_frames"])
    np.testing.assert_array_equal(np.concatenate([e.ee for e in dataset]), reference["state"])
    assert dataset[0].extras["actions"].shape == (50, 2)
    assert_robomimic_layout(tmp_path / "fixture.hdf5", ["agentview_image", "robot0_eef_pos"])
    carried = dataset.meta["env_args"]["rvperceiver"]["lerobot"]
    assert carried["fps"] == 20 and carried["robot_type"] == "mujoco_reacher"


@needs_fixture
def test_fixture_round_trip_gives_back_lerobots_metadata(tmp_path: Path) -> None:
    convert(FIXTURE, "robomimic", tmp_path / "fixture.hdf5")
    convert(tmp_path / "fixture.hdf5", "lerobot", tmp_path / "back", codec="libsvtav1")
    assert json.loads((tmp_path / "back/meta/info.json").read_text()) == json.loads((FIXTURE / "meta/info.json").read_text())
    original, back = read_lerobot(FIXTURE), read_lerobot(tmp_path / "back")
    assert back.meta["tasks"] == original.meta["tasks"]
    reference = np.load(REFERENCE, allow_pickle=False)
    frames = np.concatenate([e.frames for e in back])
    # One more lossy generation than LeRobot's own decode; compared with what MuJoCo rendered.
    assert np.abs(frames.astype(np.int16) - reference["rendered_frames"]).mean() < 2.0
    for a, b in zip(original, back):
        np.testing.assert_array_equal(b.ee, a.ee)
        np.testing.assert_array_equal(b.extras["action"], a.extras["action"])


def test_keys_can_be_renamed(reacher: Path, tmp_path: Path) -> None:
    result = convert(reacher, "lerobot", tmp_path / "named", image_storage="image", to_image_key="observation.images.front",
                     to_ee_key="observation.fingertip", ee_key="target_pos")
    dataset = read_lerobot(tmp_path / "named", image_key="observation.images.front", ee_key="observation.fingertip")
    np.testing.assert_array_equal(dataset[0].ee, read_robomimic(reacher, ee_key="target_pos")[0].ee)
    assert result.keys["robot0_eef_pos"] == "observation.robot0_eef_pos"  # the former target is an observation now


# ----- bad input: one clear line, nothing half-written ---------------------------------------------------------


def refused(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    code = cli.main(["convert", *(str(a) for a in argv), "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == cli.EXIT_USAGE and len(lines) == 1 and lines[0].startswith("rvperceiver convert: error: "), err
    return lines[0]


def test_existing_output_without_overwrite(reacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    convert(reacher, "lerobot", out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    message = refused(capsys, "--data", reacher, "--to", "lerobot", "--out", out)
    assert message == f"rvperceiver convert: error: output {out} already exists; pass --overwrite to replace it"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert cli.main(["convert", "--data", str(reacher), "--to", "lerobot", "--out", str(out), "--overwrite", "--quiet"]) == 0
    capsys.readouterr()
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    message = refused(capsys, "--data", reacher, "--to", "lerobot", "--out", precious, "--overwrite")
    assert "is not a LeRobot dataset" in message and (precious / "keep.txt").read_text() == "mine"


def test_missing_key(reacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = refused(capsys, "--data", reacher, "--to", "lerobot", "--out", tmp_path / "out", "--image-key", "wrist_image")
    assert "image key 'wrist_image' not found" in message and "agentview_image" in message
    if FIXTURE.is_dir():
        message = refused(capsys, "--data", FIXTURE, "--to", "robomimic", "--out", tmp_path / "o.hdf5", "--ee-key", "observation.eef")
        assert "target key 'observation.eef' not found" in message and "observation.state" in message
    assert list(tmp_path.iterdir()) == []


def test_codec_pyav_lacks(reacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    message = refused(capsys, "--data", reacher, "--to", "lerobot", "--out", tmp_path / "out", "--codec", "libnothing")
    assert "codec 'libnothing': this PyAV build" in message and "has no encoder of that name" in message
    real = av.codec.Codec

    def without_svtav1(name: str, mode: str = "r"):
        if name == "libsvtav1":
            raise av.codec.codec.UnknownCodecError(name)
        return real(name, mode)

    monkeypatch.setattr(av.codec, "Codec", without_svtav1)
    message = refused(capsys, "--data", reacher, "--to", "lerobot", "--out", tmp_path / "out", "--codec", "libsvtav1")
    assert "'libsvtav1'" in message and "libx264" in message and "libsvtav1," not in message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="not one of the supported video codecs"):
        convert_module.check_codec("libx265")


def test_failed_conversion_leaves_nothing_and_keeps_the_old_output(reacher: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "ds"
    convert(reacher, "lerobot", out)
    old_info = (out / "meta/info.json").read_text()
    calls = []

    def broken(path, group, fps, codec, gop, on_episode=None):
        calls.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a video")
        raise OSError("disk unplugged")

    monkeypatch.setattr(lerobot_writer, "_encode_video", broken)
    with pytest.raises(OSError, match="disk unplugged"):
        convert(reacher, "lerobot", out, overwrite=True)
    with pytest.raises(OSError, match="disk unplugged"):
        convert(reacher, "lerobot", tmp_path / "new")
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary sibling, no half dataset
    assert (out / "meta/info.json").read_text() == old_info

    def broken_demo(*args, **kwargs):
        raise OSError("disk unplugged")

    monkeypatch.setattr("rvperceiver.data.robomimic._write_demo", broken_demo)
    with pytest.raises(OSError):
        convert(out, "robomimic", tmp_path / "x.hdf5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_cli_prints_a_summary_and_a_progress_bar(reacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["convert", "--data", str(reacher), "--to", "lerobot", "--out", str(tmp_path / "ds"), "--verify"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["episodes"] == 3 and summary["frames"] == 150 and summary["verification"]["low_dim_equal"]
    assert "convert to lerobot" in captured.err and "3/3" in captured.err


def test_frame_rate_must_be_known(tmp_path: Path) -> None:
    from rvperceiver.data.episodes import Episode
    from rvperceiver.data.robomimic import write_robomimic

    rng = np.random.default_rng(0)
    path = write_robomimic(tmp_path / "a.hdf5", [Episode("demo_0", rng.integers(0, 255, (3, 4, 4, 3), dtype=np.uint8),
                                                         np.zeros((3, 3), np.float32))])
    with pytest.raises(InputError, match="pass --fps"):
        convert(path, "lerobot", tmp_path / "ds")
    convert(path, "lerobot", tmp_path / "ds", fps=10, image_storage="image")
    assert json.loads((tmp_path / "ds/meta/info.json").read_text())["fps"] == 10
    with h5py.File(path) as handle:
        assert handle["data"].attrs["total"] == 3


def test_output_onto_the_source(reacher: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = reacher.read_bytes()
    message = refused(capsys, "--data", reacher, "--to", "robomimic", "--out", reacher, "--overwrite")
    assert message == f"rvperceiver convert: error: output {reacher} is the source itself; write the conversion to another path"
    assert reacher.read_bytes() == before
