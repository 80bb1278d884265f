#!/usr/bin/env python3
"""Our policy-gradient and continuous off-policy algorithms against Stable-Baselines3 (and TRPO
against sb3-contrib), side by side in one run.

| algorithm | env | our config | theirs |
|---|---|---|---|
| PPO, A2C, TRPO | CartPole-v1 | ``config/cartpole_{ppo,a2c,trpo}.yaml`` | SB3 PPO, A2C; sb3-contrib TRPO |
| SAC, TD3, DDPG | Pendulum-v1 | ``config/pendulum_{sac,td3,ddpg}.yaml`` | SB3 SAC, TD3, DDPG |

Both sides get the same env, number of env copies, budget and hyperparameters (translated field by
field in :func:`sb3_model`), torch on one thread, no evaluation or checkpoints during training.
For every seed the runs of one algorithm alternate (ours first on even seeds, theirs first on odd
ones) so that the noise of a shared machine hits both alike. ``--hidden`` overrides the hidden
widths of both sides (the bench default [64, 64] keeps SAC's [256, 256] config affordable here).

Reported per implementation: final return (mean over seeds of a deterministic evaluation on the
same evaluation seeds), env steps per second of the training loop (collection + learning), and a
learning curve: the mean return of the last 20 training episodes against env steps.

Usage::

    python bench/compare_sb3.py [--algos ppo a2c trpo sac td3 ddpg] [--seeds 0 1 2]
                                [--cartpole-steps 50000] [--pendulum-steps 10000]
                                [--out bench/results/compare_sb3_pg.json] [--plot docs/images/compare_sb3_pg.png]
    python bench/compare_sb3.py --plot-from bench/results/a.json bench/results/b.json --plot curves.png

Needs the ``bench`` extra (stable-baselines3, sb3-contrib).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drl_ros.core.config import TrainConfig, load_train_config
from drl_ros.runtime.evaluation import EVAL_SEED_OFFSET, evaluate
from drl_ros.runtime.trainer import Trainer, _Progress

ENVS = {"ppo": "CartPole-v1", "a2c": "CartPole-v1", "trpo": "CartPole-v1",
        "sac": "Pendulum-v1", "td3": "Pendulum-v1", "ddpg": "Pendulum-v1"}
CONFIGS = {"ppo": "cartpole_ppo.yaml", "a2c": "cartpole_a2c.yaml", "trpo": "cartpole_trpo.yaml",
           "sac": "pendulum_sac.yaml", "td3": "pendulum_td3.yaml", "ddpg": "pendulum_ddpg.yaml"}
CURVE_POINTS = 25
WINDOW = 20


def load(algo: str, seed: int, steps: int, hidden: list[int] | None, log_every: int) -> TrainConfig:
    overrides = [f"seed={seed}", f"total_steps={steps}", "eval.every_steps=0", "checkpoint_every_steps=0",
                 "stop.mean_return=null", "stop.success_rate=null", "torch_threads=1", f"log_every_steps={log_every}"]
    if hidden is not None:
        overrides.append(f"{algo}.hidden_sizes={hidden}")
    return load_train_config(REPO / "config" / CONFIGS[algo], overrides)


def summarize_seeds(results: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and population std of the final returns over seeds, and the median steps/s."""
    returns = [r["return"] for r in results]
    return {"mean_return": statistics.mean(returns),
            "std_return": statistics.pstdev(returns) if len(returns) > 1 else 0.0,
            "median_steps_per_second": statistics.median(r["steps_per_second"] for r in results)}


def throughput_ratio(summary: dict[str, Any]) -> float:
    """Our median steps/s over theirs, from one algorithm's summary."""
    return summary["drl_ros"]["median_steps_per_second"] / summary["sb3"]["median_steps_per_second"]


def curve_at(ends: list[tuple[int, float]], grid: np.ndarray) -> list[float | None]:
    """Mean return of the last ``WINDOW`` episodes finished by each grid step (None before the first)."""
    out: list[float | None] = []
    for step in grid:
        done = [r for s, r in ends if s <= step][-WINDOW:]
        out.append(float(np.mean(done)) if done else None)
    return out


def run_ours(algo: str, seed: int, steps: int, hidden: list[int] | None, eval_episodes: int) -> dict[str, Any]:
    log_every = max(steps // (4 * CURVE_POINTS), 1)
    config = load(algo, seed, steps, hidden, log_every)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp) / "run", progress=False)
        ends: list[tuple[int, float]] = []
        record = trainer._record_step

        def record_episode_ends(reward: Any, terminated: Any, truncated: Any, info: Any) -> None:
            # Episode returns as they finish, for the learning curve (the trainer keeps only the last 20).
            done = terminated | truncated
            returns = trainer._episode_return + reward
            ends.extend((trainer.steps + config.env.num_envs, float(returns[e])) for e in np.flatnonzero(done))
            record(reward, terminated, truncated, info)

        trainer._record_step = record_episode_ends  # type: ignore[method-assign]
        try:
            progress = _Progress(steps, 0, enabled=False)
            start = time.perf_counter()
            if trainer.algorithm.on_policy:
                trainer._run_on_policy(progress)
            else:
                trainer._run_off_policy(progress)
            elapsed = time.perf_counter() - start
            result = evaluate(trainer.policy, trainer.eval_env, eval_episodes, seed)
        finally:
            trainer.metrics.close()
            trainer.close()
    return {"return": result.mean_return, "steps_per_second": trainer.steps / elapsed, "seconds": elapsed,
            "episodes": ends}


def sb3_model(algo: str, config: TrainConfig, seed: int, hidden: list[int] | None) -> Any:
    """The Stable-Baselines3 / sb3-contrib model with our config's hyperparameters."""
    from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    ours = config.algorithm_config()
    net = list(hidden if hidden is not None else ours.hidden_sizes)
    env = make_vec_env(config.env.id, n_envs=config.env.num_envs, seed=seed)
    common: dict[str, Any] = {"seed": seed, "device": "cpu", "verbose": 0, "gamma": ours.gamma}
    if algo == "ppo":
        def schedule(start: float) -> Any:
            return (lambda progress: start * progress) if ours.lr_schedule == "linear" else start
        return PPO("MlpPolicy", env, learning_rate=schedule(ours.learning_rate), n_steps=ours.n_steps,
                   batch_size=ours.batch_size, n_epochs=ours.n_epochs, gae_lambda=ours.gae_lambda,
                   clip_range=schedule(ours.clip_range), ent_coef=ours.ent_coef, vf_coef=ours.vf_coef,
                   max_grad_norm=ours.max_grad_norm, policy_kwargs={"net_arch": net}, **common)
    if algo == "a2c":
        return A2C("MlpPolicy", env, learning_rate=ours.learning_rate, n_steps=ours.n_steps,
                   gae_lambda=ours.gae_lambda, ent_coef=ours.ent_coef, vf_coef=ours.vf_coef,
                   max_grad_norm=ours.max_grad_norm, normalize_advantage=ours.normalize_advantage,
                   use_rms_prop=ours.optimizer == "rmsprop", policy_kwargs={"net_arch": net}, **common)
    if algo == "trpo":
        from sb3_contrib import TRPO

        return TRPO("MlpPolicy", env, learning_rate=ours.learning_rate, n_steps=ours.n_steps,
                    batch_size=ours.batch_size, gae_lambda=ours.gae_lambda, cg_max_steps=ours.cg_max_steps,
                    cg_damping=ours.cg_damping, line_search_shrinking_factor=ours.line_search_shrinking_factor,
                    line_search_max_iter=ours.line_search_max_iter, n_critic_updates=ours.n_critic_updates,
                    target_kl=ours.target_kl, normalize_advantage=ours.normalize_advantage,
                    policy_kwargs={"net_arch": net}, **common)
    off: dict[str, Any] = {"learning_rate": ours.learning_rate, "buffer_size": ours.buffer_size,
                           "learning_starts": ours.learning_starts, "batch_size": ours.batch_size, "tau": ours.tau,
                           "train_freq": ours.train_freq, "gradient_steps": ours.gradient_steps,
                           "policy_kwargs": {"net_arch": net}, **common}
    if algo == "sac":
        return SAC("MlpPolicy", env, ent_coef="auto" if ours.learn_alpha else ours.initial_alpha, **off)
    act_dim = env.action_space.shape[0]
    # SB3 adds the noise to the action in [-1, 1], as our collect_action does.
    noise = NormalActionNoise(np.zeros(act_dim), ours.action_noise * np.ones(act_dim))
    if algo == "td3":
        return TD3("MlpPolicy", env, action_noise=noise, policy_delay=ours.policy_delay,
                   target_policy_noise=ours.target_policy_noise, target_noise_clip=ours.target_noise_clip, **off)
    return DDPG("MlpPolicy", env, action_noise=noise, **off)


def run_sb3(algo: str, seed: int, steps: int, hidden: list[int] | None, eval_episodes: int) -> dict[str, Any]:
    from stable_baselines3.common.callbacks import BaseCallback

    config = load(algo, seed, steps, hidden, 1000)
    model = sb3_model(algo, config, seed, hidden)
    ends: list[tuple[int, float]] = []

    class EpisodeEnds(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    ends.append((self.num_timesteps, float(info["episode"]["r"])))
            return True

    start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=EpisodeEnds())
    elapsed = time.perf_counter() - start
    eval_env = gym.make(config.env.id)
    returns = []
    for episode in range(eval_episodes):
        obs, _ = eval_env.reset(seed=seed + EVAL_SEED_OFFSET + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    eval_env.close()
    model.get_env().close()
    return {"return": float(np.mean(returns)), "steps_per_second": model.num_timesteps / elapsed,
            "seconds": elapsed, "episodes": ends}


def curves(runs: dict[str, Any], budgets: dict[str, int]) -> dict[str, Any]:
    """Per algorithm: the step grid and, per implementation, one learning curve per seed."""
    out: dict[str, Any] = {}
    for algo, impls in runs.items():
        grid = np.linspace(budgets[algo] / CURVE_POINTS, budgets[algo], CURVE_POINTS)
        out[algo] = {"steps": grid.tolist(),
                     **{impl: [curve_at(r["episodes"], grid) for r in results] for impl, results in impls.items()}}
    return out


def plot(curve_sets: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(curve_sets)
    cols = min(len(algos), 3)
    rows = -(-len(algos) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(algos):]:
        ax.set_visible(False)
    for ax, algo in zip(axes.flat, algos):
        grid = np.asarray(curve_sets[algo]["steps"])
        for impl, color in (("drl_ros", "tab:blue"), ("sb3", "tab:orange")):
            curves = np.array([[np.nan if v is None else v for v in seed_curve]
                               for seed_curve in curve_sets[algo][impl]], dtype=float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # grid points before any episode ended
                mean, low, high = (np.nanmean(curves, axis=0), np.nanmin(curves, axis=0),
                                   np.nanmax(curves, axis=0))
            label = impl if impl == "drl_ros" else ("sb3-contrib" if algo == "trpo" else "Stable-Baselines3")
            ax.plot(grid, mean, color=color, label=label)
            ax.fill_between(grid, low, high, color=color, alpha=0.2)
        ax.set_title(f"{algo.upper()} · {ENVS[algo]}", fontsize=9)
        ax.legend(fontsize=7)
        ax.set_xlabel("env steps", fontsize=8)
        ax.tick_params(labelsize=7)
    for row in axes:
        row[0].set_ylabel("training return (last 20 episodes)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cartpole-steps", type=int, default=50_000)
    parser.add_argument("--pendulum-steps", type=int, default=10_000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64],
                        help="hidden widths for both sides; 0 keeps each config's own")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare_sb3_pg.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "images" / "compare_sb3_pg.png")
    parser.add_argument("--plot-from", type=Path, nargs="+", metavar="JSON",
                        help="draw --plot from the curves of earlier result files and exit (no training)")
    args = parser.parse_args()
    if args.plot_from:
        merged: dict[str, Any] = {}
        for result_file in args.plot_from:
            merged.update(json.loads(result_file.read_text())["curves"])
        plot(merged, args.plot)
        print(f"wrote {args.plot}")
        return 0
    torch.set_num_threads(1)
    import sb3_contrib
    import stable_baselines3

    hidden = None if args.hidden == [0] else args.hidden
    budgets = {a: args.cartpole_steps if ENVS[a] == "CartPole-v1" else args.pendulum_steps for a in args.algos}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {a: {"drl_ros": [], "sb3": []} for a in args.algos}
    for i, seed in enumerate(args.seeds):
        for algo in args.algos:
            order = [("drl_ros", run_ours), ("sb3", run_sb3)]
            for impl, fn in order if i % 2 == 0 else order[::-1]:
                res = fn(algo, seed, budgets[algo], hidden, args.eval_episodes)
                runs[algo][impl].append({"seed": seed, **res})
                print(f"{algo:5s} {impl:8s} seed {seed}: return {res['return']:7.1f}, "
                      f"{res['steps_per_second']:7.0f} steps/s ({res['seconds']:.0f} s)", flush=True)

    summary: dict[str, Any] = {}
    print(f"\nseeds {args.seeds}, {args.eval_episodes} eval episodes each, hidden {hidden or 'per config'}")
    print("| algorithm | env, budget | implementation | final return (mean ± std over seeds) | env steps/s (median) |")
    print("|---|---|---|---|---|")
    for algo, impls in runs.items():
        summary[algo] = {"env": ENVS[algo], "steps": budgets[algo]}
        for impl, results in impls.items():
            row = summary[algo][impl] = summarize_seeds(results)
            name = impl if impl == "drl_ros" else ("sb3-contrib" if algo == "trpo" else "Stable-Baselines3")
            print(f"| {algo} | {ENVS[algo]}, {budgets[algo] // 1000} k | {name} | "
                  f"{row['mean_return']:.1f} ± {row['std_return']:.1f} | {row['median_steps_per_second']:.0f} |")
        ratio = summary[algo]["throughput_ratio"] = throughput_ratio(summary[algo])
        print(f"| {algo} | | ratio drl_ros / theirs | | {ratio:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "seeds": args.seeds, "eval_episodes": args.eval_episodes, "hidden_sizes": hidden, "budgets": budgets,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__, "sb3_contrib": sb3_contrib.__version__},
        "machine": platform.platform(), "summary": summary, "curves": curves(runs, budgets),
        "runs": {a: {impl: [{k: v for k, v in r.items() if k != "episodes"} for r in rs]
                     for impl, rs in impls.items()} for a, impls in runs.items()}}, indent=2) + "\n")
    plot(curves(runs, budgets), args.plot)
    print(f"\nwrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
