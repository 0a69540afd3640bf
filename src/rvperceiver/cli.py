"""The ``rvperceiver`` command line: train, evaluate, predict, inspect data, run the seed's studies and the simulator.

Every sub-command is a thin shell over a library function, so what the CLI does a user can do from Python too.
Library errors (bad data, bad config, bad checkpoint) are printed as one line and exit with status 2; nothing
on disk is overwritten unless ``--overwrite`` says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rvperceiver.errors import RVPerceiverError

EXIT_USAGE = 2


def _refuse_existing(path: str | Path, overwrite: bool) -> Path:
    """Output paths that exist are refused unless ``--overwrite``: a finished run is never clobbered by accident."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise RVPerceiverError(f"output {path} already exists; pass --overwrite to replace it")
    return path


def _write_json(path: str | Path | None, payload: Any, overwrite: bool) -> None:
    text = json.dumps(payload, indent=2, sort_keys=False, default=_json_default)
    print(text)
    if path is not None:
        from rvperceiver.utils import atomic_write_text

        atomic_write_text(_refuse_existing(path, overwrite), text + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _add_data_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--data", required=required, help="robomimic .hdf5/.h5 file or LeRobot v3 directory")
    parser.add_argument("--image-key", default=None, help="HDF5 key under obs/ or LeRobot feature name of the frames")
    parser.add_argument("--ee-key", default=None, help="HDF5 key under obs/ or LeRobot feature name of the EE position")


# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from rvperceiver.train.config import load_config
    from rvperceiver.train.run import train_from_config

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"out_dir={args.out}")
    config = load_config(args.config, overrides)
    result = train_from_config(config, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    summary = {"out_dir": str(result.out_dir) if result.out_dir else None, "step": result.step}
    if result.final is not None:
        summary["final"] = result.final.to_dict()
    print(json.dumps(summary, indent=2, default=_json_default))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rvperceiver.train.run import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint, args.data, image_key=args.image_key, ee_key=args.ee_key, split=args.split, device=args.device
    )
    _write_json(args.out, metrics, args.overwrite)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from rvperceiver.train.run import predict_checkpoint, write_predictions

    out = _refuse_existing(args.out, args.overwrite)
    predictions = predict_checkpoint(
        args.checkpoint, args.data, image_key=args.image_key, ee_key=args.ee_key, split=args.split, device=args.device
    )
    write_predictions(out, predictions)
    print(f"wrote {len(predictions['prediction'])} predicted trajectories to {out}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from rvperceiver.train.run import dataset_view_statistics

    report = dataset_view_statistics(
        args.data,
        image_key=args.image_key,
        ee_key=args.ee_key,
        t_obs=args.t_obs,
        token_mode=args.token_mode,
        patch_size=args.patch_size,
        max_samples=args.max_samples,
    )
    _write_json(args.out, report, args.overwrite)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from rvperceiver.train.run import inspect_dataset

    _write_json(None, inspect_dataset(args.data, image_key=args.image_key, ee_key=args.ee_key), False)
    return 0


def cmd_sim_generate(args: argparse.Namespace) -> int:
    from rvperceiver.sim.generate import generate_to_file

    if args.env != "reacher":
        raise RVPerceiverError(f"unknown environment {args.env!r}; available: reacher")
    stats = generate_to_file(
        args.out,
        args.episodes,
        args.seed,
        image_size=args.image_size,
        valid_fraction=args.valid_fraction,
        overwrite=args.overwrite,
        progress=not args.quiet,
        target_render_scale=args.target_render_scale,
    )
    print(json.dumps(stats, indent=2, default=_json_default))
    return 0


def cmd_sim_eval(args: argparse.Namespace) -> int:
    from rvperceiver.train.run import simulate_checkpoint

    metrics = simulate_checkpoint(
        args.checkpoint,
        episodes=args.episodes,
        seed=args.seed,
        replan_every=args.replan_every,
        demos=args.demos,
        device=args.device,
        save_strip=args.strip,
        progress=not args.quiet,
    )
    _write_json(args.out, metrics, args.overwrite)
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from rvperceiver.experiments.runner import main_experiment

    out = Path(args.out)
    if args.profile == "long" and args.name != "bc":
        raise RVPerceiverError(
            f"profile 'long' exists only for the bc experiment; {args.name} takes --profile quick or full"
        )
    if _holds_results_of(out, args.name) and not args.overwrite:
        raise RVPerceiverError(
            f"{out} already holds results of {args.name}; pass --overwrite to replace them (results of the other "
            f"experiments in the same directory are kept either way)"
        )
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    if args.name == "bc":
        from rvperceiver.experiments.bc import run_bc_study

        run_bc_study(args.profile, out, seeds, work_dir=args.work, progress=True)
        return 0
    main_experiment(args.name, args.profile, out, seeds)
    return 0


def _holds_results_of(out: Path, experiment: str) -> bool:
    """Whether ``out`` already has records of ``experiment`` (the studies share one results.json per directory)."""
    if experiment == "bc":
        return (out / "results.json").exists()
    try:
        records = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, json.JSONDecodeError):
        return True  # unreadable: let the user decide
    return any(isinstance(r, dict) and r.get("experiment") == experiment for r in records)


def cmd_convert(args: argparse.Namespace) -> int:
    from rvperceiver.data.convert import ConvertConfig, convert_dataset

    config = ConvertConfig(
        Path(args.data), args.to, Path(args.out), args.image_key, args.ee_key, args.to_image_key, args.to_ee_key,
        args.image_storage, args.codec, args.fps, args.task, args.overwrite, args.verify, progress=not args.quiet,
    )
    print(json.dumps(convert_dataset(config), indent=2, default=_json_default))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rvperceiver.experiments.runner import demo

    print(demo(Path(args.out)))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rvperceiver",
        description="Perceiver IO with real-valued spectral input views, for behaviour cloning from images.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a policy from a YAML config (dotted key=value overrides)")
    p.add_argument("--config", default=None, help="YAML file (configs/*.yaml); omitted = built-in defaults")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-3 optim.betas=[0.999,0.999]")
    p.add_argument("--out", default=None, help="run directory (overrides out_dir)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="allow a fresh run into an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="metrics of a checkpoint on a dataset (MSE in metres, NMSE, collapse verdict)")
    p.add_argument("--checkpoint", required=True, help="run directory or its checkpoint/ directory")
    _add_data_args(p)
    p.add_argument("--split", choices=("all", "train", "valid"), default="all",
                   help="which episodes (split as in training: same valid_fraction and split_seed)")
    p.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="predicted EE trajectories for every sample (.npz or .json)")
    p.add_argument("--checkpoint", required=True)
    _add_data_args(p)
    p.add_argument("--split", choices=("all", "train", "valid"), default="all")
    p.add_argument("--out", required=True, help="FILE.npz or FILE.json")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("stats", help="per-view dataset statistics and the adaptive raw/Fourier choice, as JSON")
    _add_data_args(p)
    p.add_argument("--t-obs", type=int, default=2)
    p.add_argument("--token-mode", choices=("scalar", "pixel", "patch"), default="scalar")
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--max-samples", type=int, default=2048, help="samples streamed (0 = all)")
    p.add_argument("--out", default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("inspect", help="episodes, frames, image shape, EE range: what to check first")
    _add_data_args(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("sim", help="MuJoCo simulation: generate demos, closed-loop evaluation")
    sim = p.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    g = sim.add_parser("generate", help="scripted-expert demos written as robomimic HDF5")
    g.add_argument("--env", default="reacher", help="environment (reacher)")
    g.add_argument("--episodes", type=int, default=200)
    g.add_argument("--seed", type=int, default=0, help="episode i uses env seed SEED+i")
    g.add_argument("--image-size", type=int, default=64)
    g.add_argument("--valid-fraction", type=float, default=0.1)
    g.add_argument("--target-render-scale", type=float, default=1.0, help="draw the target sphere larger (visual only)")
    g.add_argument("--out", required=True, help="FILE.hdf5")
    g.add_argument("--overwrite", action="store_true")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_sim_generate)
    e = sim.add_parser("eval", help="closed-loop success rate of a checkpoint (fingertip within 1 cm at the end)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--seed", type=int, default=100000, help="first evaluation seed; must not overlap training seeds")
    e.add_argument("--replan-every", type=int, default=4)
    e.add_argument("--demos", default=None, help="held-out demos (.hdf5) for the offline per-step EE error")
    e.add_argument("--strip", default=None, help="save a PNG strip of a few rollouts here")
    e.add_argument("--out", default=None)
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--device", default="cpu")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_sim_eval)

    p = sub.add_parser("experiment", help="the seed's studies (tiny-difference, frequency-shift, theory) and the "
                       "Reacher behaviour-cloning comparison (bc)")
    p.add_argument("name", choices=("tiny-difference", "frequency-shift", "theory", "bc"))
    p.add_argument("--profile", choices=("quick", "long", "full"), default="quick",
                   help="long: bc only (quick's demos and model, 5x the steps, plus a patch-token Perceiver)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the profile's)")
    p.add_argument("--out", required=True, help="directory for results.json, report.md and plots")
    p.add_argument("--work", default=None, help="bc only: where demos and checkpoints go (default OUT/work)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("convert", help="convert a dataset between robomimic HDF5 and LeRobot v3 (keys, splits kept)")
    _add_data_args(p)
    p.add_argument("--to", required=True, choices=("robomimic", "lerobot"), help="format to write")
    p.add_argument("--out", required=True, help="FILE.hdf5 (robomimic) or a directory (LeRobot)")
    p.add_argument("--to-image-key", default=None, help="name of the frames in the output (default: mapped)")
    p.add_argument("--to-ee-key", default=None, help="name of the EE position in the output (default: mapped)")
    p.add_argument("--image-storage", choices=("video", "image"), default="video", help="LeRobot: mp4 or PNG")
    p.add_argument("--codec", default="libx264", help="LeRobot video codec: libx264, libsvtav1 or mpeg4")
    p.add_argument("--fps", type=int, default=None, help="frame rate (default: the source's)")
    p.add_argument("--task", default=None, help="LeRobot task string (default: the source's or 'demonstration')")
    p.add_argument("--verify", action="store_true", help="read the output back and report frame errors")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("demo", help="small demo: trains raw vs spectral views and prints the comparison table")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `train` takes its dotted overrides anywhere on the line (`train --out d steps=5`); argparse alone accepts a
    # positional list only once, in one place, and would reject the second half as unrecognised arguments.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if getattr(args, "command", None) == "train" and all("=" in u and not u.startswith("-") for u in unknown):
            args.overrides = [*args.overrides, *unknown]
        else:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except RVPerceiverError as error:
        print(f"rvperceiver {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and closed early: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
