"""Composed mode: every node in one process under one rclpy executor (ROS 2 manual composition).

``drl-ros train --ros [CONFIG]`` lands here (the CLI imports this module by name, so the runtime
never imports rclpy). The nodes are the same classes ``ros2 launch`` starts as processes, talking
over the same topics and services; only the wiring differs. Training stops at ``total_steps``
env steps or when the learner's recent episodes reach ``stop.success_rate``; then the policy is
saved to the run folder and evaluated like an embedded run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import dump_config_yaml, load_config
from drl_ros.nodes.experience_collector import ExperienceCollector
from drl_ros.nodes.gym_bridge import GymBridge
from drl_ros.nodes.learner import Learner
from drl_ros.nodes.policy_server import PolicyServer
from drl_ros.nodes.safety_shield import SafetyShield
from drl_ros.runtime.env_factory import make_env
from drl_ros.runtime.evaluation import evaluate


def _params(values: dict[str, Any]) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items()]


def run_composed(config_path: Path, overrides: list[str], run_dir: Path, namespace: str = "",
                 progress: bool = True) -> dict[str, Any]:
    config = load_config(TrainConfig, config_path, overrides=overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config_yaml(config, run_dir / "config.yaml")
    env = make_env(config.env)
    low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
    env.close()
    rclpy.init()
    nodes = []
    try:
        common = {"namespace": namespace}
        # A fresh run each time, as the embedded `drl-ros train` (whose --resume is explicit).
        learner_params: dict[str, Any] = {"config": str(config_path), "run_dir": str(run_dir), "resume": False}
        if overrides:  # an empty list carries no parameter type
            learner_params["overrides"] = list(overrides)
        learner = Learner(parameter_overrides=_params(learner_params), **common)
        nodes = [
            learner,
            GymBridge(parameter_overrides=_params({"env_id": config.env.id, "env_kwargs": json.dumps(config.env.kwargs),
                                                   "seed": config.seed, "max_pending_updates": 20}), **common),
            PolicyServer(parameter_overrides=_params({"seed": config.seed}), **common),
            SafetyShield(parameter_overrides=_params({"action_low": low, "action_high": high}), **common),
            ExperienceCollector(**common),
        ]
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        start, last_print = time.monotonic(), 0.0
        target = config.stop.success_rate
        try:
            while learner.received < config.total_steps or learner.owed_updates() > 0:
                executor.spin_once(timeout_sec=0.05)
                now = time.monotonic()
                successes = learner.learner.successes
                success = sum(successes) / len(successes) if successes else None
                if progress and now - last_print > 5.0:
                    last_print = now
                    print(f"[{now - start:6.0f} s] {learner.received} steps, {learner.updates} updates, policy "
                          f"version {learner.policy.version}, recent success "
                          f"{'-' if success is None else f'{100 * success:.0f} %'}", flush=True)
                if (target is not None and success is not None and len(successes) >= 20
                        and success >= target and learner.updates > 0):
                    break
        except KeyboardInterrupt:
            pass
        policy_path = learner.save()
    finally:
        for node in nodes:
            close = getattr(node, "close", None)
            if close is not None and node is not nodes[0]:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    eval_env = make_env(config.env)
    try:
        result = evaluate(learner.policy.eval(), eval_env, config.eval.final_episodes or config.eval.episodes,
                          config.seed, config.eval.deterministic)
    finally:
        eval_env.close()
    (run_dir / "eval.json").write_text(json.dumps({"steps": learner.received, **result.to_dict()}, indent=2) + "\n")
    return {"steps": learner.received, "updates": learner.updates, "policy": policy_path, "eval": result}


def main_from_cli(args: Any, config_path: Path) -> int:
    """The ``drl-ros train --ros`` command (arguments parsed by drl_ros.runtime.cli)."""
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{config_path.stem}-ros-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"drl_ros: training over ROS 2 (composed: all nodes in one process) with {config_path} -> {run_dir}",
          flush=True)
    out = run_composed(config_path, list(args.set or ()), run_dir, progress=not args.no_progress)
    print(f"Evaluation after {out['steps']} steps ({out['updates']} updates): {out['eval'].summary()}")
    print(f"Policy:          {out['policy']}")
    return 0
