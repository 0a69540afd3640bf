"""Round trip robomimic HDF5 -> LeRobot -> HDF5 through `rvperceiver convert`: frame error and size per codec.

    python benchmarks/bench_convert.py [--episodes 20] [--image-size 64] [--out FILE.json]

Generates Reacher demos (seed 0), converts them to LeRobot with each codec (and PNG image storage), back to
HDF5, and prints per setting the mean and max absolute frame error (in 1/255 units) against the original
frames, whether every low-dimensional array came back bit-identical, the LeRobot dataset's size and the wall
time of the two conversions. The same for the shared LeRobot fixture (LeRobot -> HDF5 -> LeRobot), whose
frames are compared with the fixture's decoded frames.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from rvperceiver.data.convert import ConvertConfig, convert_dataset
from rvperceiver.data.formats import open_episodes
from rvperceiver.sim.generate import generate_to_file

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lerobot_v30_reacher"
SETTINGS = (("video", "libx264"), ("video", "libsvtav1"), ("video", "mpeg4"), ("image", "-"))


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def _compare(original: Path, back: Path) -> dict[str, float | bool]:
    a, b = open_episodes(original), open_episodes(back)
    diff = np.concatenate([np.abs(x.frames.astype(np.int16) - y.frames.astype(np.int16)).ravel() for x, y in zip(a, b)])
    low_dim = all(
        np.array_equal(x.ee, y.ee) and all(np.array_equal(np.reshape(y.extras[k], v.shape), v) for k, v in x.extras.items())
        for x, y in zip(a, b)
    )
    return {"mean_abs_error": float(diff.mean()), "max_abs_error": int(diff.max()), "low_dim_identical": low_dim}


def run(episodes: int, image_size: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        source = work / "reacher.hdf5"
        generate_to_file(source, episodes, seed=0, image_size=image_size, valid_fraction=0.1, progress=False)
        for storage, codec in SETTINGS:
            middle, back = work / f"lerobot_{storage}_{codec}", work / f"back_{storage}_{codec}.hdf5"
            start = time.perf_counter()
            convert_dataset(ConvertConfig(source, "lerobot", middle, image_storage=storage,
                                          codec=codec if codec != "-" else "libx264", progress=False))
            convert_dataset(ConvertConfig(middle, "robomimic", back, progress=False))
            seconds = time.perf_counter() - start
            rows.append({"data": f"reacher {episodes}x50 frames {image_size}px", "trip": "hdf5->lerobot->hdf5",
                         "storage": storage, "codec": codec, **_compare(source, back),
                         "lerobot_mb": round(_size_mb(middle), 3), "seconds": round(seconds, 2)})
        if FIXTURE.is_dir():
            middle = work / "fixture.hdf5"
            convert_dataset(ConvertConfig(FIXTURE, "robomimic", middle, progress=False))
            for storage, codec in SETTINGS:
                back = work / f"fixture_{storage}_{codec}"
                start = time.perf_counter()
                convert_dataset(ConvertConfig(middle, "lerobot", back, image_storage=storage,
                                              codec=codec if codec != "-" else "libx264", progress=False))
                rows.append({"data": "LeRobot fixture 4x50 frames 64px", "trip": "lerobot->hdf5->lerobot",
                             "storage": storage, "codec": codec, **_compare(FIXTURE, back),
                             "lerobot_mb": round(_size_mb(back), 3), "seconds": round(time.perf_counter() - start, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = run(args.episodes, args.image_size)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
    print(f"{'data':34} {'trip':24} {'storage':7} {'codec':9} {'MAE/255':>8} {'max':>4} {'low-dim':>8} {'MB':>7} {'s':>6}")
    for r in rows:
        print(f"{r['data']:34} {r['trip']:24} {r['storage']:7} {r['codec']:9} {r['mean_abs_error']:8.3f} "
              f"{r['max_abs_error']:4d} {str(r['low_dim_identical']):>8} {r['lerobot_mb']:7.3f} {r['seconds']:6.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
