#!/usr/bin/env python3
"""Our DQN and QR-DQN against Stable-Baselines3's DQN and sb3-contrib's QR-DQN on CartPole-v1,
side by side in one run.

Both sides get the same env, budget and hyperparameters (the rl-baselines3-zoo CartPole ones,
which ``config/cartpole_dqn.yaml`` and ``config/cartpole_qrdqn.yaml`` hold), torch on one thread,
no evaluation or checkpoints during training. For every seed the four runs alternate (ours first
on even seeds, theirs first on odd ones) so that the noise of a shared machine hits both alike.

Reported per implementation: final return (mean over seeds of a 20-episode deterministic
evaluation on the same evaluation seeds) and env steps per second of the training loop.

Hyperparameter translation: the zoo's ``target_update_interval: 10`` counts env steps, and its
target update runs during collection, where nothing trains; with ``train_freq: 256`` and
``gradient_steps: 128`` that is one target update per round of 128 gradient steps, which is
``target_update_interval: 128`` (gradient steps) here. ``exploration_fraction: 0.16`` of the
budget is our ``exploration_steps``.

Usage::

    python bench/compare_sb3_dqn.py [--steps 50000] [--seeds 0 1 2] [--algos dqn qrdqn]
                                    [--out bench/results/compare_sb3_dqn.json]

Needs the ``bench`` extra (stable-baselines3, sb3-contrib).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from compare_sb3 import summarize_seeds, throughput_ratio  # bench/ is on sys.path: it is the script's folder

from drl_ros.core.config import load_train_config
from drl_ros.runtime.evaluation import EVAL_SEED_OFFSET, evaluate
from drl_ros.runtime.trainer import Trainer, _Progress

CONFIGS = {"dqn": "cartpole_dqn.yaml", "qrdqn": "cartpole_qrdqn.yaml"}
ENV_ID = "CartPole-v1"


def run_ours(algo: str, seed: int, steps: int, eval_episodes: int) -> dict[str, Any]:
    overrides = [f"seed={seed}", f"total_steps={steps}", "eval.every_steps=0", "checkpoint_every_steps=0",
                 "stop.mean_return=null", f"{algo}.exploration_steps={int(0.16 * steps)}", "torch_threads=1"]
    config = load_train_config(REPO / "config" / CONFIGS[algo], overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp) / "run", progress=False)
        try:
            start = time.perf_counter()
            trainer._run_off_policy(_Progress(steps, 0, enabled=False))
            elapsed = time.perf_counter() - start
            result = evaluate(trainer.policy, trainer.eval_env, eval_episodes, seed)
        finally:
            trainer.metrics.close()
            trainer.close()
    return {"return": result.mean_return, "steps_per_second": trainer.steps / elapsed, "seconds": elapsed}


def run_sb3(algo: str, seed: int, steps: int, eval_episodes: int) -> dict[str, Any]:
    from sb3_contrib import QRDQN
    from stable_baselines3 import DQN

    config = load_train_config(REPO / "config" / CONFIGS[algo])
    ours = config.algorithm_config()
    common: dict[str, Any] = {
        "learning_rate": ours.learning_rate, "buffer_size": ours.buffer_size, "learning_starts": ours.learning_starts,
        "batch_size": ours.batch_size, "gamma": ours.gamma, "train_freq": ours.train_freq,
        "gradient_steps": ours.gradient_steps, "target_update_interval": 10, "exploration_fraction": 0.16,
        "exploration_final_eps": ours.exploration_final_eps, "max_grad_norm": ours.max_grad_norm, "seed": seed,
        "device": "cpu", "verbose": 0}
    env = gym.make(ENV_ID)
    if algo == "dqn":
        model = DQN("MlpPolicy", env, policy_kwargs={"net_arch": list(ours.hidden_sizes)}, **common)
    else:
        model = QRDQN("MlpPolicy", env, policy_kwargs={"net_arch": list(ours.hidden_sizes),
                                                        "n_quantiles": ours.n_quantiles}, **common)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    eval_env = gym.make(ENV_ID)
    returns = []
    for episode in range(eval_episodes):
        obs, _ = eval_env.reset(seed=seed + EVAL_SEED_OFFSET + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    eval_env.close()
    return {"return": float(np.mean(returns)), "steps_per_second": steps / elapsed, "seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", choices=sorted(CONFIGS), default=["dqn", "qrdqn"])
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare_sb3_dqn.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import sb3_contrib
    import stable_baselines3

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {a: {"drl_ros": [], "sb3": []} for a in args.algos}
    for i, seed in enumerate(args.seeds):
        for algo in args.algos:
            order = [("drl_ros", run_ours), ("sb3", run_sb3)]
            for impl, fn in order if i % 2 == 0 else order[::-1]:
                res = fn(algo, seed, args.steps, args.eval_episodes)
                runs[algo][impl].append({"seed": seed, **res})
                print(f"{algo:6s} {impl:8s} seed {seed}: return {res['return']:6.1f}, "
                      f"{res['steps_per_second']:7.0f} steps/s ({res['seconds']:.0f} s)", flush=True)
                # Partial results survive an interrupted run.
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"partial": True, "steps": args.steps, "runs": runs}, indent=2) + "\n")

    summary: dict[str, Any] = {}
    print(f"\nCartPole-v1, {args.steps} env steps, seeds {args.seeds}, {args.eval_episodes} eval episodes each")
    print("| algorithm | implementation | final return (mean ± std over seeds) | env steps/s (median) |")
    print("|---|---|---|---|")
    for algo, impls in runs.items():
        summary[algo] = {}
        for impl, results in impls.items():
            row = summary[algo][impl] = summarize_seeds(results)
            name = impl if impl == "drl_ros" else ("Stable-Baselines3" if algo == "dqn" else "sb3-contrib")
            print(f"| {algo} | {name} | {row['mean_return']:.1f} ± {row['std_return']:.1f} | "
                  f"{row['median_steps_per_second']:.0f} |")
        ratio = summary[algo]["throughput_ratio"] = throughput_ratio(summary[algo])
        print(f"| {algo} | ratio drl_ros / sb3 | | {ratio:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "env": ENV_ID, "steps": args.steps, "seeds": args.seeds, "eval_episodes": args.eval_episodes,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__, "sb3_contrib": sb3_contrib.__version__},
        "machine": platform.platform(), "summary": summary, "runs": runs}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
