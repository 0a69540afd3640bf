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
from rvperceiver.utils import json_default

EXIT_USAGE = 2


def _refuse_existing(path: str | Path, overwrite: bool) -> Path:
    """Output paths that exist are refused unless ``--overwrite``: a finished run is never clobbered by accident."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise RVPerceiverError(f"output {path} already exists; pass --overwrite to replace it")
    return path


def _json_text(payload: Any) -> str:
    """JSON meant for people too: indented, and non-ASCII (≈, β, –) written as itself rather than escaped."""
    return json.dumps(payload, indent=2, sort_keys=False, default=json_default, ensure_ascii=False)


def _write_json(path: str | Path | None, payload: Any, overwrite: bool, echo: bool = True) -> None:
    """Write ``payload`` to ``path`` (refused if it exists, unless ``overwrite``); ``echo`` also prints it."""
    text = _json_text(payload)
    if path is not None:
        from rvperceiver.utils import atomic_write_text

        atomic_write_text(_refuse_existing(path, overwrite), text + "\n")
    if echo:
        print(text)


def _add_data_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--data", required=required, metavar="PATH",
                        help="robomimic .hdf5/.h5 file or LeRobot v3 directory (the format is told by the path)")
    parser.add_argument("--image-key", default=None, metavar="KEY",
                        help="HDF5 key under obs/ or LeRobot feature name of the frames (default: the checkpoint's "
                        "or the format's: agentview_image / observation.images.top)")
    parser.add_argument("--ee-key", default=None, metavar="KEY",
                        help="HDF5 key under obs/ or LeRobot feature name of the end-effector position (default: the "
                        "checkpoint's or the format's: robot0_eef_pos / observation.state)")


# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from rvperceiver.train.config import load_config, to_yaml
    from rvperceiver.train.run import train_from_config

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"out_dir={args.out}")
    config = load_config(args.config, overrides)
    if args.show_config:
        source = args.config or "the built-in defaults"
        print(f"# resolved config: {source}" + (f" with {' '.join(overrides)}" if overrides else ""))
        print("# every key can be set in the YAML file or as a dotted override, e.g. optim.lr=1e-3")
        print(to_yaml(config), end="")
        return 0
    result = train_from_config(config, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    summary: dict[str, Any] = {"out_dir": str(result.out_dir) if result.out_dir else None, "step": result.step}
    if result.final is not None:
        summary["final"] = result.final.to_dict()
    if result.out_dir is not None:
        summary["learning_curve"] = str(result.out_dir / "learning_curve.png")
    print(_json_text(summary))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rvperceiver.summary import eval_summary
    from rvperceiver.train.run import evaluate_checkpoint

    if args.out is not None:
        _refuse_existing(args.out, args.overwrite)  # before the work, not after it
    metrics = evaluate_checkpoint(
        args.checkpoint, args.data, image_key=args.image_key, ee_key=args.ee_key, split=args.split,
        device=args.device, progress=not args.quiet,
    )
    _write_json(args.out, metrics, args.overwrite, echo=args.json)
    if not args.json:
        print(eval_summary(metrics, args.out))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from rvperceiver.train.run import predict_checkpoint

    out = _refuse_existing(args.out, args.overwrite)
    written = predict_checkpoint(
        args.checkpoint, args.data, out, image_key=args.image_key, ee_key=args.ee_key, split=args.split,
        device=args.device, batch_size=args.batch_size, progress=not args.quiet,
    )
    print(f"wrote {written} predicted trajectories to {out}")
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
    from rvperceiver.data.formats import list_keys
    from rvperceiver.errors import DataError
    from rvperceiver.train.run import inspect_dataset

    try:
        report = inspect_dataset(args.data, image_key=args.image_key, ee_key=args.ee_key)
    except DataError as error:
        if args.image_key is not None or args.ee_key is not None:
            raise  # the user named keys: the one-line error says which is wrong and what is there
        try:
            listing = list_keys(args.data)
        except DataError:
            raise error from None  # not a layout we can list keys of: the reader's message says what is wrong
        present = {entry["key"] for entry in listing["keys"]}  # type: ignore[union-attr]
        if set(listing["default_keys"].values()) <= present:  # type: ignore[union-attr]
            raise  # the keys are there; something else is wrong, and the reader's message says what
        # The format's default keys are not in this file: show what is, so the user can name the right ones.
        listing["note"] = (
            "the default keys are not in this dataset; pick the frames and the target from the candidates and pass "
            "--image-key KEY --ee-key KEY (and data.image_key / data.ee_key in a training config)"
        )
        report = listing
    _write_json(None, report, False)
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
        tier=args.tier,
    )
    print(json.dumps(stats, indent=2, default=json_default))
    return 0


def cmd_sim_eval(args: argparse.Namespace) -> int:
    from rvperceiver.sim.closed_loop import evaluate_checkpoint
    from rvperceiver.summary import sim_eval_summary

    if args.out is not None:
        _refuse_existing(args.out, args.overwrite)  # before minutes of rollouts, not after them
    if args.strip is not None:
        _refuse_existing(args.strip, args.overwrite)
    metrics = evaluate_checkpoint(
        args.checkpoint,
        tier=None if args.tier == "trained" else args.tier,
        episodes=args.episodes,
        seed=args.seed,
        execute=args.execute,
        ensemble=args.ensemble,
        strip_path=args.strip,
        demos=args.demos,
        device=args.device,
        progress=not args.quiet,
    )
    _write_json(args.out, metrics, args.overwrite, echo=args.json)
    if not args.json:
        print(sim_eval_summary(metrics, args.out))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from rvperceiver.experiments.runner import main_experiment

    out = Path(args.out)
    if args.name == "bc":  # a bundled name or one's own YAML file; a bad one is the loader's one line
        from rvperceiver.experiments.bc_profile import get_bc_profile

        get_bc_profile(args.profile)
    elif args.profile not in (known := ("quick", "standard", "full")):
        raise RVPerceiverError(
            f"profile {args.profile!r} does not exist; expected one of {', '.join(known)} for {args.name}"
        )
    runs_log = out / f"runs-{args.name}.jsonl"
    has_log = args.name not in ("bc", "theory") and runs_log.exists()
    resumable = has_log or (args.name != "bc" and args.report_only)
    if args.overwrite and has_log:
        runs_log.unlink()  # start afresh instead of resuming
    elif _holds_results_of(out, args.name) and not args.overwrite and not resumable:
        raise RVPerceiverError(
            f"{out} already holds results of {args.name}; pass --overwrite to replace them (results of the other "
            f"experiments in the same directory are kept either way)"
        )
    from rvperceiver.experiments.tasks import parse_seeds

    seeds = list(parse_seeds(args.seeds)) if args.seeds is not None else None  # one line for a bad list, every study
    if args.name == "bc":
        from rvperceiver.experiments.bc import run_bc_study, write_merged

        if args.merge:
            write_merged(args.merge, out)
        else:
            run_bc_study(args.profile, out, seeds, work_dir=args.work, progress=True, reuse=args.reuse)
        print(f"report: {out / 'report.md'}")
        return 0
    if args.merge or args.reuse:
        raise RVPerceiverError(f"--{'merge' if args.merge else 'reuse'} exists only for the bc experiment")
    questions = [q.strip() for q in args.questions.split(",") if q.strip()] if args.questions is not None else None
    main_experiment(args.name, args.profile, out, seeds, workers=args.workers, questions=questions, order=args.order,
                    report_only=args.report_only)
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
    print(_json_text(convert_dataset(config)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rvperceiver.experiments.runner import demo

    out = Path(args.out)
    print(demo(out, progress=not args.quiet))
    print(f"(written to {out / 'demo.md'}, {out / 'demo.png'} and {out / 'results.json'})")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that teaches: every option shows its default (flags and "no default" options excepted) and the
    descriptions and epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and "default:" not in text
            and default is not None
            and default is not False
            and default != argparse.SUPPRESS
            and not isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction))
            and (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
            and default != []
        ):
            text += " (default: %(default)s)"
        return text


_TRAIN_EPILOG = """examples:
  rvperceiver train --config configs/reacher_cpu.yaml --out runs/reacher_cpu
  rvperceiver train --config configs/reacher_cpu.yaml steps=200 optim.lr=1e-3 --out runs/try
  rvperceiver train --show-config --config configs/reacher_cpu.yaml      # every key, resolved, as YAML

A non-empty --out is refused unless --resume (continue it) or --overwrite (delete the old run's outputs first).
The run directory gets checkpoints/<step>/ (last, best), metrics.jsonl, learning_curve.png, tensorboard/ (tensorboard --logdir DIR),
split.json and, with view_choice=adaptive, view_choice.json.
"""


def _add_out_args(p: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    p.add_argument("--out", required=required, default=None, metavar="FILE",
                   help=what + ("" if required else " (default: not written)"))
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (otherwise it is refused)")


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rvperceiver",
        description="Perceiver IO with real-valued spectral input views, for behaviour cloning from images.",
        formatter_class=_HelpFormatter,
        epilog="Every command has --help. Errors are one line on stderr with exit status 2.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter, **kwargs)

    p = command(sub, "train", "train a policy from a YAML config (dotted key=value overrides)", epilog=_TRAIN_EPILOG)
    p.add_argument("--config", default=None, metavar="YAML",
                   help="YAML file (configs/*.yaml); omitted = the built-in defaults (see --show-config)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, anywhere on the line, e.g. steps=500 optim.lr=1e-3 data.path=FILE.hdf5")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default: the config's out_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the newest step in DIR/checkpoints exactly where it stopped")
    p.add_argument("--overwrite", action="store_true",
                   help="start a fresh run in a non-empty run directory, deleting the old run's outputs first")
    p.add_argument("--show-config", action="store_true",
                   help="print the resolved config (every key, with the overrides applied) as YAML and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-evaluation lines")
    p.set_defaults(func=cmd_train)

    p = command(sub, "eval", "metrics of a checkpoint on a dataset (MSE in metres, NMSE, collapse verdict)")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory, a checkpoints/<step> directory or a pretrained_model directory")
    _add_data_args(p)
    p.add_argument("--split", choices=("all", "train", "valid"), default="all",
                   help="which episodes: all, or the train/valid side of the split the run was trained with "
                   "(same data.valid_episodes / file masks / valid_fraction and split_seed)")
    _add_out_args(p, "write the full metrics as JSON to this file")
    p.add_argument("--json", action="store_true", help="print the full JSON instead of the short summary")
    _add_device_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = command(sub, "predict", "predicted EE trajectories for every sample (.npz or .json), streamed batch by batch")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory, a checkpoints/<step> directory or a pretrained_model directory")
    _add_data_args(p)
    p.add_argument("--split", choices=("all", "train", "valid"), default="all",
                   help="which episodes (see eval --help)")
    _add_out_args(p, "FILE.npz (arrays prediction, target, episode, start) or FILE.json (one record per sample)",
                  required=True)
    p.add_argument("--batch-size", type=int, default=16,
                   help="samples per forward pass; memory is bounded by this, not by the dataset")
    _add_device_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = command(sub, "stats", "per-view dataset statistics and the adaptive raw/Fourier choice, as JSON")
    _add_data_args(p)
    p.add_argument("--t-obs", type=int, default=2, help="frames per observation window")
    p.add_argument("--token-mode", choices=("scalar", "pixel", "patch"), default="scalar",
                   help="how frames become tokens: one value, one pixel or one patch per token")
    p.add_argument("--patch-size", type=int, default=4, help="patch side in pixels (token-mode patch)")
    p.add_argument("--max-samples", type=int, default=2048, help="samples streamed (0 = all)")
    _add_out_args(p, "also write the JSON to this file")
    p.set_defaults(func=cmd_stats)

    p = command(sub, "inspect", "episodes, frames, image shape, EE range: what to check first (without keys that "
                "the file has, lists its candidate image and target keys with shapes)")
    _add_data_args(p)
    p.set_defaults(func=cmd_inspect)

    p = command(sub, "sim", "MuJoCo simulation: generate demos, closed-loop evaluation")
    sim = p.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    g = command(sim, "generate", "scripted-expert Reacher demos written as robomimic HDF5")
    g.add_argument("--env", default="reacher", help="environment (only reacher)")
    g.add_argument("--episodes", type=int, default=200, help="number of demos")
    g.add_argument("--seed", type=int, default=0, help="episode i uses env seed SEED+i")
    g.add_argument("--image-size", type=int, default=64, help="frame side in pixels (square RGB frames)")
    g.add_argument("--valid-fraction", type=float, default=0.1,
                   help="fraction of demos written to the file's mask/valid (training uses it as the split)")
    g.add_argument("--target-render-scale", type=float, default=1.0,
                   help="draw the target sphere this many times larger (visual only; the physics is unchanged)")
    g.add_argument("--tier", default="stock",
                   help="task tier: stock, fixed-start, arm-hidden or arm-hidden-angles (rvperceiver.sim.tiers; default: stock)")
    g.add_argument("--out", required=True, metavar="FILE", help="FILE.hdf5")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists (otherwise it is refused)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_sim_generate)
    e = command(sim, "eval", "closed-loop success of a checkpoint through the demos' own tracker (fingertip within "
                "2 cm / 1 cm of the target at the end), with the expert, the oracle and the mean predictor on the "
                "same seeds")
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory, a checkpoints/<step> directory or a pretrained_model directory")
    e.add_argument("--episodes", type=int, default=50, help="closed-loop episodes (env seeds SEED … SEED+N-1)")
    e.add_argument("--seed", type=int, default=100000,
                   help="first evaluation env seed; refused if it overlaps the seeds the training demos used")
    e.add_argument("--tier", default="trained",
                   help="'trained' (the tier of the training demos, the default) or a tier name with the same drawing "
                   "options, to test transfer")
    e.add_argument("--execute", "--replan-every", dest="execute", type=int, default=4,
                   help="setpoints executed per predicted chunk before the policy is queried again (receding "
                   "horizon, 1 … t_pred)")
    e.add_argument("--ensemble", type=float, default=None,
                   help="temporal ensembling with weights exp(-m*i) instead of the receding horizon")
    e.add_argument("--demos", default=None, metavar="FILE",
                   help="held-out demos (.hdf5) for the offline metrics (RMSE, NMSE) beside the closed loop")
    e.add_argument("--strip", default=None, metavar="PNG",
                   help="save a labelled picture of the first rollouts here (default: none)")
    _add_out_args(p=e, what="write the full record (per episode, references, settings) as JSON to this file")
    e.add_argument("--json", action="store_true", help="print the full JSON instead of the short summary")
    _add_device_arg(e)
    e.add_argument("--quiet", action="store_true", help="no progress bar (for the offline metrics of --demos)")
    e.set_defaults(func=cmd_sim_eval)

    p = command(sub, "experiment", "the seed's studies (tiny-difference, frequency-shift, theory) and the "
                "Reacher behaviour-cloning comparison (bc)")
    p.add_argument("name", choices=("tiny-difference", "frequency-shift", "theory", "bc"), help="which study")
    p.add_argument("--profile", default="quick",
                   help="quick: sized for 2 CPU cores (CI-sized); standard: the README's tables (about an hour on 2 "
                   "CPU cores); full: sized for a GPU; bc also takes a profile YAML file (a copy of "
                   "src/rvperceiver/experiments/profiles/bc_standard.yaml, edited)")
    p.add_argument("--seeds", default=None, help="comma-separated training seeds (default: the profile's)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for results.json, report.md and plots")
    p.add_argument("--work", default=None, metavar="DIR",
                   help="bc only: where demos and checkpoints go (default: OUT/work)")
    p.add_argument("--merge", nargs="+", default=None, metavar="PART",
                   help="bc only: merge finished parts (same profile, disjoint --seeds; a part stopped early gives "
                   "the seeds it finished) into OUT instead of running")
    p.add_argument("--reuse", default=None, metavar="RESULTS_JSON",
                   help="bc only: continue an earlier run of this profile with fewer budgets: keep its runs' scored "
                   "budgets and train them on from their last checkpoint (in --work) to the new budgets")
    p.add_argument("--workers", type=int, default=None,
                   help="seed studies: training processes, one thread each (default: the profile's)")
    p.add_argument("--questions", default=None,
                   help="seed studies: only the cells that serve these claims, e.g. R3,R4 (default: every cell)")
    p.add_argument("--report-only", action="store_true",
                   help="seed studies: train nothing; rewrite results.json, report.md and plots from OUT's runs log")
    p.add_argument("--order", choices=("seed", "cell"), default="seed",
                   help="seed studies: seed = every cell's first seed, then the second, ...; cell = every seed of the "
                   "cheapest cell first (each finished cell decidable on its own)")
    p.add_argument("--overwrite", action="store_true", help="replace this study's earlier results in OUT")
    p.set_defaults(func=cmd_experiment)

    p = command(sub, "convert", "convert a dataset between robomimic HDF5 and LeRobot v3 (keys, splits kept)")
    _add_data_args(p)
    p.add_argument("--to", required=True, choices=("robomimic", "lerobot"), help="format to write")
    p.add_argument("--out", required=True, metavar="PATH", help="FILE.hdf5 (robomimic) or a directory (LeRobot)")
    p.add_argument("--to-image-key", default=None, help="name of the frames in the output (default: mapped)")
    p.add_argument("--to-ee-key", default=None, help="name of the EE position in the output (default: mapped)")
    p.add_argument("--image-storage", choices=("video", "image"), default="video", help="LeRobot: mp4 or PNG")
    p.add_argument("--codec", default="libx264", help="LeRobot video codec: libx264, libsvtav1 or mpeg4")
    p.add_argument("--fps", type=int, default=None, help="frame rate (default: the source's)")
    p.add_argument("--task", default=None, help="LeRobot task string (default: the source's or 'demonstration')")
    p.add_argument("--verify", action="store_true", help="read the output back and report frame errors")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (otherwise it is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_convert)

    p = command(sub, "demo", "small demo: trains raw vs spectral views on the seed's tiny-difference task and prints "
                "the comparison table (also written as demo.md and demo.png)")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="where results.json, demo.md and demo.png go")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """Warnings as one readable line for people at a terminal (no source path and code line)."""
    return f"rvperceiver: {category.__name__}: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    previous_format, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = previous_format


def _main(argv: Sequence[str] | None) -> int:
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
