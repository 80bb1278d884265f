"""Learning benchmarks of the robot suite (issue 6): train with a shipped config, then check the
target on fresh evaluation episodes. Not CI: these take minutes to hours of CPU.

    python bench/robot_tasks.py sort  --out bench/results/robot_sort_dqn.json
    python bench/robot_tasks.py reach --out bench/results/robot_reach_sac.json
    python bench/robot_tasks.py push  --out bench/results/robot_push_sac_her.json
    python bench/robot_tasks.py walk  --out bench/results/robot_a1_walk_ppo.json
    python bench/robot_tasks.py sort  --steps 5000          # a shorter budget, e.g. a smoke run
    python bench/robot_tasks.py push  --set sac.batch_size=256   # a config override, as for drl-ros train
    python bench/robot_tasks.py walk  --resume runs/bench-walk-<time> --steps 1500000   # train on, then check

Budgets and targets (written down here and in docs/robots.md):

| task  | config                      | budget (env steps) | target                               |
|-------|-----------------------------|--------------------|--------------------------------------|
| reach | config/panda_reach.yaml     | 50 k               | >= 95 % success (100 episodes)       |
| push  | config/panda_push_her.yaml  | 1 M                | >= 80 % success (100 episodes)       |
| sort  | config/panda_sort_dqn.yaml  | 20 k               | >= 90 % sorted episodes (100)        |
| walk  | config/a1_walk_ppo.yaml     | 5 M                | >= 0.5 m/s mean over 10 s, no fall   |

Walking is judged on the full task (curriculum level 1, randomization on, as trained) at a fixed
commanded speed of 0.6 m/s: the mean forward speed of each 10 s episode must reach 0.5 m/s and
no episode may fall.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import load_config
from drl_ros.core.policy import Policy
from drl_ros.runtime.env_factory import make_env
from drl_ros.runtime.evaluation import evaluate
from drl_ros.runtime.trainer import Trainer

TASKS = {
    "reach": ("panda_reach.yaml", 50_000, ("success_rate", 0.95)),
    "push": ("panda_push_her.yaml", 1_000_000, ("success_rate", 0.80)),
    "sort": ("panda_sort_dqn.yaml", 20_000, ("success_rate", 0.90)),
    "walk": ("a1_walk_ppo.yaml", 5_000_000, ("mean_forward_speed", 0.5)),
}


def walk_check(policy: Policy, config: TrainConfig, episodes: int, seed: int) -> dict[str, float]:
    """Mean forward speed and falls over 10 s episodes at a commanded 0.6 m/s."""
    kwargs = {**config.env.kwargs, "curriculum": None,
              "task_kwargs": {"command_low": 0.6, "command_high": 0.6}}
    env = make_env(type(config.env)(id=config.env.id, kwargs=kwargs))
    speeds, falls = [], 0
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            done, steps = False, 0
            while not done:
                obs, _, terminated, truncated, info = env.step(policy.act(obs, deterministic=True).env_action[0])
                steps += 1
                done = terminated or truncated
            falls += bool(info.get("fallen"))
            speeds.append(env.unwrapped.task.mean_forward_speed(steps * env.unwrapped.sim.control_dt))
    finally:
        env.close()
    return {"mean_forward_speed": float(np.min(speeds)), "falls": falls, "episodes": episodes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--steps", type=int, help="env-step budget (default: the table's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=100, help="final evaluation episodes")
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue that run from its last checkpoint (its own config, then --set and --steps)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as for drl-ros train --set (repeatable)")
    args = parser.parse_args()

    config_name, budget, (metric, target) = TASKS[args.task]
    steps = args.steps or budget
    if args.resume:
        run_dir = args.resume
        config = load_config(TrainConfig, run_dir / "config.yaml", overrides=[f"total_steps={steps}", *args.overrides])
    else:
        run_dir = args.run_dir or ROOT / "runs" / f"bench-{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
        config = load_config(TrainConfig, ROOT / "config" / config_name,
                             overrides=[f"total_steps={steps}", f"seed={args.seed}", *args.overrides])
    start = time.perf_counter()
    with Trainer(config, run_dir, resume=bool(args.resume), progress=False) as trainer:
        resumed_from = trainer.steps
        result = trainer.train()
    wall = time.perf_counter() - start
    policy = Policy.load(run_dir / "policy")
    if args.task == "walk":
        measured = walk_check(policy, config, min(args.episodes, 10), args.seed + 10_000)
        value, passed = measured["mean_forward_speed"], measured["mean_forward_speed"] >= target and measured["falls"] == 0
    else:
        env = make_env(config.env)
        try:
            evaluation = evaluate(policy, env, args.episodes, args.seed + 10_000)
        finally:
            env.close()
        measured = evaluation.to_dict()
        value = evaluation.success_rate or 0.0
        passed = value >= target
    report = {"task": args.task, "config": config_name, "overrides": args.overrides, "budget_steps": budget,
              "resumed_from_steps": resumed_from, "steps_trained": result.steps, "wall_s": wall,
              "metric": metric, "target": target, "value": value, "passed": passed,
              "evaluation": measured, "run_dir": str(run_dir)}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
