"""``drl-ros``: train, evaluate and plot in embedded mode (no ROS needed).

    drl-ros train [CONFIG] [--set FIELD=VALUE ...] [--run-dir DIR] [--resume RUN_DIR]
    drl-ros train --ros [CONFIG] [--set FIELD=VALUE ...] [--run-dir DIR]
    drl-ros eval RUN_DIR [--episodes N] [--stochastic] [--video [FILE.mp4|FILE.gif]]
    drl-ros plot RUN_DIR [--out FILE.png]
    drl-ros export RUN_DIR [--format onnx] [--out DIR] [--no-env]
    drl-ros configs
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_CONFIG = "kuka_reach"


def config_dirs() -> list[Path]:
    """Where embedded configs live: the source tree's ``config/`` (editable installs and checkouts)
    and ``<prefix>/share/drl_ros/config`` (wheel installs, and the ROS install space)."""
    package_dir = Path(__file__).resolve().parent.parent
    return [package_dir.parent / "config", Path(sys.prefix) / "share" / "drl_ros" / "config"]


def embedded_configs() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in config_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                found.setdefault(path.stem, path)
    return found


def resolve_config(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    configs = embedded_configs()
    stem = path.name.removesuffix(".yaml")
    if stem in configs and path.parent == Path("."):
        return configs[stem]
    known = ", ".join(configs) or "none found"
    raise ValueError(f"config {name_or_path!r} is neither a file nor an embedded config (embedded: {known})")


def _print_outputs(run_dir: Path, curve: Path | None) -> None:
    print(f"Run folder:      {run_dir}")
    print(f"Policy:          {run_dir / 'policy.json'}")
    print(f"Checkpoint:      {run_dir / 'checkpoints' / 'last.json'}")
    if curve is not None:
        print(f"Learning curve:  {curve}")
    print(f"TensorBoard:     tensorboard --logdir {run_dir / 'tensorboard'}")


def cmd_train(args: argparse.Namespace) -> int:
    from drl_ros.core.config import TrainConfig
    from drl_ros.core.config_loading import load_config
    from drl_ros.runtime.trainer import Trainer

    if args.ros:
        if args.resume:
            raise ValueError("--ros runs start fresh; --resume is for embedded runs")
        # By module name: the runtime never imports rclpy itself (DESIGN.md section 3).
        import importlib

        try:
            composed = importlib.import_module("drl_ros.nodes.composed")
        except ImportError as error:
            raise ValueError(f"--ros needs rclpy and the ROS build ({error}): run tools/build_ros.sh, then "
                             "source build/ros/install/setup.bash") from error
        return int(composed.main_from_cli(args, resolve_config(args.config or DEFAULT_CONFIG)))
    if args.resume:
        run_dir = Path(args.resume)
        source = Path(args.config) if args.config else run_dir / "config.yaml"
        if not (run_dir / "checkpoints" / "last.json").exists():
            raise ValueError(f"--resume {run_dir}: no checkpoint at {run_dir / 'checkpoints' / 'last.json'}")
        config_path = resolve_config(str(source))
    else:
        config_path = resolve_config(args.config or DEFAULT_CONFIG)
    config = load_config(TrainConfig, config_path, overrides=args.set or ())
    if not args.resume:  # a resumed run keeps its folder
        if args.run_dir:
            run_dir = Path(args.run_dir)
        elif config.run_dir:
            run_dir = Path(config.run_dir)
        else:
            run_dir = Path("runs") / f"{config_path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"drl_ros: training {config.algorithm.upper()} on {config.env.id} for up to {config.total_steps} steps "
          f"({config.env.num_envs} env{'s' if config.env.num_envs > 1 else ''}, seed {config.seed}) -> {run_dir}",
          flush=True)
    with Trainer(config, run_dir, resume=bool(args.resume), progress=not args.no_progress) as trainer:
        result = trainer.train()
    if result.interrupted:
        print(f"Interrupted at step {result.steps}; checkpoint saved. Resume with: drl-ros train --resume {run_dir}")
    if result.final_eval is not None:
        print(f"Evaluation after {result.steps} steps: {result.final_eval.summary()}")
    _print_outputs(run_dir, result.curve_path)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from drl_ros.core.policy import Policy
    from drl_ros.runtime.env_factory import make_env
    from drl_ros.runtime.evaluation import evaluate
    from drl_ros.runtime.trainer import load_run_config

    run_dir = Path(args.run)
    config = load_run_config(run_dir)
    policy = Policy.load(run_dir / "policy")
    frames: list = []
    if args.video is not None:
        from drl_ros.runtime.video import default_video_path, write_video

        video_path = default_video_path(run_dir) if args.video == "" else Path(args.video)
    # A video renders every step, so it evaluates one episode unless told otherwise.
    episodes = args.episodes or (1 if args.video is not None else config.eval.episodes)
    env = make_env(config.env, render_mode="rgb_array" if args.video is not None else None)
    try:
        record = (lambda e: frames.append(e.render())) if args.video is not None else None
        result = evaluate(policy, env, episodes, args.seed, not args.stochastic, frame_callback=record)
        fps = float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()
    print(f"Evaluation of {run_dir / 'policy.json'} (version {policy.version}) on {config.env.id}: {result.summary()}")
    if args.video is not None:
        print(f"Video:           {write_video(frames, video_path, fps)} ({len(frames)} frames)")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from drl_ros.runtime.plot import plot_run

    print(f"Learning curve:  {plot_run(args.run, args.out)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from drl_ros.runtime.export import export_run

    result = export_run(args.run, args.out, args.format, use_env=not args.no_env)
    contract = result.contract
    print(f"ONNX policy:     {result.onnx_path} (sha256 {contract['onnx']['sha256'][:16]}..., "
          f"policy version {contract['policy_version']})")
    print(f"Policy contract: {result.contract_path}")
    print(f"Checked against torch: max |difference| {result.max_abs_diff:.2g}")
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    for name, path in embedded_configs().items():
        print(f"{name:24s} {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drl-ros", description="drl_ros embedded mode: train, evaluate, plot.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a policy (embedded, no ROS)")
    train.add_argument("config", nargs="?", help=f"config file or embedded config name (default {DEFAULT_CONFIG})")
    train.add_argument("--set", action="append", metavar="FIELD=VALUE",
                       help="override a config field, e.g. --set sac.learning_rate=1e-3 (repeatable)")
    train.add_argument("--run-dir", help="run folder (default runs/<config>-<time>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    train.add_argument("--ros", action="store_true",
                       help="train over ROS 2: every node in this process under one executor (needs the ROS build)")
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="evaluate a run's policy")
    ev.add_argument("run", help="run folder")
    ev.add_argument("--episodes", type=int, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean")
    ev.add_argument("--video", nargs="?", const="", default=None, metavar="FILE",
                    help="record the rollout (rgb_array) to FILE.mp4 or FILE.gif (default RUN/eval.mp4, "
                         "or eval.gif without the video extra)")
    ev.set_defaults(func=cmd_eval)
    plot = sub.add_parser("plot", help="write a run's learning-curve PNG")
    plot.add_argument("run", help="run folder")
    plot.add_argument("--out", help="output PNG (default RUN/learning_curve.png)")
    plot.set_defaults(func=cmd_plot)
    export = sub.add_parser("export", help="export a run's policy for deployment (ONNX + policy contract)")
    export.add_argument("run", help="run folder")
    export.add_argument("--format", default="onnx", choices=["onnx"])
    export.add_argument("--out", help="output folder (default RUN/export)")
    export.add_argument("--no-env", action="store_true",
                        help="do not build the env (no observation terms, joint map or control rate)")
    export.set_defaults(func=cmd_export)
    configs = sub.add_parser("configs", help="list the embedded configs")
    configs.set_defaults(func=cmd_configs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as error:
        print(f"drl-ros: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
