#!/usr/bin/env python3
"""Embedded-training throughput and framework overhead, measured side by side in one run.

Variants, interleaved within every repeat (the order alternates between repeats) so that the
noise of a shared machine hits them alike:

``raw``
    A Gymnasium ``SyncVectorEnv`` with same-step autoreset, built by
    :func:`drl_ros.runtime.env_factory.make_vector_env`, stepped with uniform random actions
    drawn before the clock starts. Env steps per second, summed over the copies.
``collect``
    The trainer's own on-policy loop (:meth:`Trainer._run_on_policy`: ``policy.act`` on the
    batch, ``envs.step``, ``rollout.add``, episode bookkeeping, periodic logging) with the
    end-of-rollout GAE and the PPO update stubbed out, so it is collection only.
``forward``
    On the observation batches the ``collect`` variant stored, as many calls as it made, under
    ``no_grad``: the network forward pass (:meth:`Policy.forward` on tensors: normalizer +
    actor network, the graph that is exported), then ``actor.sample`` (network + sampling +
    log-probability), then the full :meth:`Policy.act` (numpy in, numpy out).
``ppo``
    :class:`~drl_ros.runtime.trainer.Trainer` with algorithm ``ppo`` (defaults except
    ``n_steps``), timed around its training loop; the time spent in the GAE pass and in
    ``PPO.update`` is split out, and the whole ``train()`` call (final checkpoint, policy
    file, final evaluation, plot) is reported apart.

Framework overhead per env step (DESIGN.md section 7, target ≤ 25 %)::

    (collect time − raw time − network forward time) / raw time

computed per repeat from the paired measurements, then the median over repeats. The table also
gives it with ``actor.sample`` or all of ``Policy.act`` counted as "forward" instead, which
shows how much of the overhead is sampling and numpy/torch glue.

Usage::

    python bench/throughput.py [--env drl_ros/KukaReach-v0] [--num-envs 4] [--steps 20000]
                               [--repeats 3] [--n-steps 512] [--out bench/results/throughput.json]
    python bench/throughput.py --profile 10000 [--profile-out bench/results/profile.prof]

``--profile N`` runs the PPO trainer loop for N env steps under cProfile instead and prints the
functions with the most self time (cProfile inflates the cost of small Python calls, so use it
to rank hot spots, not to time them).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from drl_ros.core.config import EnvConfig, TrainConfig
from drl_ros.core.config_loading import load_config
from drl_ros.runtime.env_factory import make_vector_env
from drl_ros.runtime.trainer import Trainer, _Progress

TORCH_THREADS = 1  # the TrainConfig default; every variant runs under it


# -- configuration ---------------------------------------------------------------------------
def train_config(env_id: str, num_envs: int, steps: int, n_steps: int, run_dir: Path, seed: int) -> TrainConfig:
    """PPO defaults except ``n_steps``; no periodic evaluation or checkpoints."""
    return load_config(TrainConfig, {
        "algorithm": "ppo",
        "total_steps": steps,
        "seed": seed,
        "env": {"id": env_id, "num_envs": num_envs, "vectorization": "sync"},
        "ppo": {"n_steps": n_steps},
        "eval": {"every_steps": 0, "episodes": 5},
        "checkpoint_every_steps": 0,
        "torch_threads": TORCH_THREADS,
        "run_dir": str(run_dir),
    }, source_name="bench/throughput.py")


class _Timed:
    """Wraps a callable and accumulates its wall time and call count."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


# -- variants --------------------------------------------------------------------------------
def run_raw(env_id: str, num_envs: int, steps: int, seed: int) -> dict[str, float]:
    envs = make_vector_env(EnvConfig(id=env_id, num_envs=num_envs))
    try:
        iterations = -(-steps // num_envs)
        envs.action_space.seed(seed)
        actions = [envs.action_space.sample() for _ in range(iterations)]
        envs.reset(seed=seed)
        step = envs.step
        start = time.perf_counter()
        for action in actions:
            step(action)
        seconds = time.perf_counter() - start
    finally:
        envs.close()
    env_steps = iterations * num_envs
    return {"env_steps": env_steps, "seconds": seconds, "steps_per_s": env_steps / seconds,
            "us_per_vector_step": 1e6 * seconds / iterations}


def run_collect(config: TrainConfig, run_dir: Path) -> tuple[dict[str, float], np.ndarray]:
    """The trainer's on-policy loop with the GAE pass and the update replaced by no-ops.

    Returns the timings and the last rollout's observations ``(n_steps, num_envs, obs_dim)``.
    """
    trainer = Trainer(config, run_dir, progress=False)
    try:
        trainer._finish_rollout = lambda algo, rollout, last_obs: None  # type: ignore[method-assign]
        trainer.algorithm.update = lambda batch, rng=None: {}  # type: ignore[method-assign]
        progress = _Progress(config.total_steps, 0, enabled=False)
        start = time.perf_counter()
        trainer._run_on_policy(progress)
        seconds = time.perf_counter() - start
        iterations = trainer.steps // config.env.num_envs
        assert trainer.rollout is not None
        observations = trainer.rollout.obs.copy()
    finally:
        trainer.metrics.close()
        trainer.close()
    return ({"env_steps": trainer.steps, "seconds": seconds, "steps_per_s": trainer.steps / seconds,
             "us_per_vector_step": 1e6 * seconds / iterations, "vector_steps": iterations}, observations)


def run_forward(config: TrainConfig, run_dir: Path, observations: np.ndarray, calls: int) -> dict[str, float]:
    """Three nested costs on the stored observation batches, ``calls`` calls each:

    ``net``: :meth:`Policy.forward` on tensors (normalizer + actor network, the exported graph);
    ``sample``: ``actor.sample`` on tensors (network + sampling + log-probability);
    ``act``: :meth:`Policy.act` (numpy in, numpy out, action scaling), what the trainer calls.
    """
    trainer = Trainer(config, run_dir, progress=False)
    try:
        policy = trainer.policy
        batches_np = [np.ascontiguousarray(o) for o in observations]
        batches_t = [torch.from_numpy(o) for o in batches_np]
        n = len(batches_t)
        sample = policy.actor.sample
        normalize = policy.normalize
        act = policy.act

        def net_calls(lo: int, hi: int) -> None:
            with torch.no_grad():
                for i in range(lo, hi):
                    policy(batches_t[i % n])

        def sample_calls(lo: int, hi: int) -> None:
            with torch.no_grad():
                for i in range(lo, hi):
                    sample(normalize(batches_t[i % n]))

        def act_calls(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                act(batches_np[i % n])

        kinds = [("net", net_calls), ("sample", sample_calls), ("act", act_calls)]
        for _, fn in kinds:  # warm-up
            fn(0, min(calls, 50))
        seconds = dict.fromkeys(("net", "sample", "act"), 0.0)
        block = 128
        for b, lo in enumerate(range(0, calls, block)):
            hi = min(lo + block, calls)
            for k in range(3):  # interleaved in blocks, rotating which goes first
                name, fn = kinds[(b + k) % 3]
                start = time.perf_counter()
                fn(lo, hi)
                seconds[name] += time.perf_counter() - start
        result: dict[str, float] = {"calls": calls}
        for name, value in seconds.items():
            result[f"{name}_seconds"] = value
    finally:
        trainer.metrics.close()
        trainer.close()
    for name in ("net", "sample", "act"):
        result[f"us_per_{name}"] = 1e6 * result[f"{name}_seconds"] / calls
    return result


def run_ppo(config: TrainConfig, run_dir: Path) -> dict[str, float]:
    start = time.perf_counter()
    trainer = Trainer(config, run_dir, progress=False)
    construct = time.perf_counter() - start
    try:
        loop = _Timed(trainer._run_on_policy)
        gae = _Timed(trainer._finish_rollout)
        update = _Timed(trainer.algorithm.update)
        trainer._run_on_policy = loop  # type: ignore[method-assign]
        trainer._finish_rollout = gae  # type: ignore[method-assign]
        trainer.algorithm.update = update  # type: ignore[method-assign]
        start = time.perf_counter()
        result = trainer.train()
        train_total = time.perf_counter() - start
    finally:
        trainer.close()
    steps = result.steps
    collect = loop.seconds - gae.seconds - update.seconds
    return {"env_steps": steps, "seconds": loop.seconds, "steps_per_s": steps / loop.seconds,
            "collect_seconds": collect, "gae_seconds": gae.seconds, "update_seconds": update.seconds,
            "updates": update.calls, "construct_seconds": construct, "train_call_seconds": train_total,
            "steps_per_s_train_call": steps / train_total}


# -- driver ----------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return float(statistics.median(values))


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(TORCH_THREADS)
    repeats: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="drl_ros_bench_") as tmp:
        for r in range(args.repeats):
            seed = args.seed + r
            config = lambda name: train_config(args.env, args.num_envs, args.steps, args.n_steps,  # noqa: E731
                                               Path(tmp) / f"{name}-{r}", seed)
            record: dict[str, Any] = {"order": []}

            def do_raw() -> None:
                record["raw"] = run_raw(args.env, args.num_envs, args.steps, seed)

            def do_collect_forward() -> None:
                collect, observations = run_collect(config("collect"), Path(tmp) / f"collect-{r}")
                record["collect"] = collect
                record["forward"] = run_forward(config("forward"), Path(tmp) / f"forward-{r}", observations,
                                                collect["vector_steps"])

            def do_ppo() -> None:
                record["ppo"] = run_ppo(config("ppo"), Path(tmp) / f"ppo-{r}")

            variants = [("raw", do_raw), ("collect+forward", do_collect_forward), ("ppo", do_ppo)]
            if r % 2 == 1:
                variants.reverse()
            for name, fn in variants:
                fn()
                record["order"].append(name)
            raw_us = record["raw"]["us_per_vector_step"]
            collect_us = record["collect"]["us_per_vector_step"]
            fwd = record["forward"]
            record["overhead"] = (collect_us - raw_us - fwd["us_per_net"]) / raw_us
            record["overhead_beyond_sample"] = (collect_us - raw_us - fwd["us_per_sample"]) / raw_us
            record["overhead_beyond_act"] = (collect_us - raw_us - fwd["us_per_act"]) / raw_us
            record["ppo_over_raw"] = record["ppo"]["steps_per_s"] / record["raw"]["steps_per_s"]
            record["collect_over_raw"] = record["collect"]["steps_per_s"] / record["raw"]["steps_per_s"]
            repeats.append(record)
            print(f"repeat {r + 1}/{args.repeats}: raw {record['raw']['steps_per_s']:.0f}/s, "
                  f"collect {record['collect']['steps_per_s']:.0f}/s, ppo {record['ppo']['steps_per_s']:.0f}/s, "
                  f"overhead {100 * record['overhead']:.1f} %", file=sys.stderr, flush=True)

    def med(path: tuple[str, ...]) -> float:
        values = []
        for rec in repeats:
            value: Any = rec
            for key in path:
                value = value[key]
            values.append(float(value))
        return median(values)

    summary = {
        "raw_steps_per_s": med(("raw", "steps_per_s")),
        "ppo_steps_per_s": med(("ppo", "steps_per_s")),
        "ppo_over_raw": med(("ppo_over_raw",)),
        "collect_steps_per_s": med(("collect", "steps_per_s")),
        "collect_over_raw": med(("collect_over_raw",)),
        "raw_us_per_vector_step": med(("raw", "us_per_vector_step")),
        "collect_us_per_vector_step": med(("collect", "us_per_vector_step")),
        "net_us_per_call": med(("forward", "us_per_net")),
        "sample_us_per_call": med(("forward", "us_per_sample")),
        "act_us_per_call": med(("forward", "us_per_act")),
        "overhead": med(("overhead",)),
        "overhead_beyond_sample": med(("overhead_beyond_sample",)),
        "overhead_beyond_act": med(("overhead_beyond_act",)),
        "ppo_update_seconds": med(("ppo", "update_seconds")),
        "ppo_gae_seconds": med(("ppo", "gae_seconds")),
        "ppo_collect_seconds": med(("ppo", "collect_seconds")),
        "ppo_loop_seconds": med(("ppo", "seconds")),
        "ppo_train_call_seconds": med(("ppo", "train_call_seconds")),
        "ppo_steps_per_s_train_call": med(("ppo", "steps_per_s_train_call")),
    }
    return {
        "benchmark": "throughput",
        "env": args.env,
        "num_envs": args.num_envs,
        "steps": args.steps,
        "repeats": args.repeats,
        "ppo_n_steps": args.n_steps,
        "seed": args.seed,
        "overhead_target": 0.25,
        "machine": machine_info(),
        "summary": summary,
        "per_repeat": repeats,
    }


def machine_info() -> dict[str, Any]:
    import gymnasium

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "numpy": np.__version__, "gymnasium": gymnasium.__version__,
                            "platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "torch_threads": TORCH_THREADS}
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def print_table(result: dict[str, Any]) -> None:
    s = result["summary"]
    n = result["num_envs"]
    rows = [
        ("raw env stepping", f"{s['raw_steps_per_s']:,.0f} steps/s", f"{s['raw_us_per_vector_step']:,.1f} µs / vector step"),
        ("collection only (trainer loop)", f"{s['collect_steps_per_s']:,.0f} steps/s",
         f"{s['collect_us_per_vector_step']:,.1f} µs / vector step; collect/raw {s['collect_over_raw']:.2f}"),
        ("network forward (Policy.forward)", "", f"{s['net_us_per_call']:,.1f} µs / batch of {n}"),
        ("  + sampling (actor.sample)", "", f"{s['sample_us_per_call']:,.1f} µs / batch of {n}"),
        ("  + numpy glue (Policy.act)", "", f"{s['act_us_per_call']:,.1f} µs / batch of {n}"),
        ("PPO training loop", f"{s['ppo_steps_per_s']:,.0f} steps/s", f"PPO/raw {s['ppo_over_raw']:.3f}"),
        ("  of which collect / GAE / update", "",
         f"{s['ppo_collect_seconds']:.2f} s / {s['ppo_gae_seconds']:.2f} s / {s['ppo_update_seconds']:.2f} s"),
        ("PPO whole train() call", f"{s['ppo_steps_per_s_train_call']:,.0f} steps/s",
         f"{s['ppo_train_call_seconds']:.2f} s incl. final save/eval/plot"),
        ("framework overhead", f"{100 * s['overhead']:.1f} % of raw step",
         f"target ≤ 25 %; beyond actor.sample {100 * s['overhead_beyond_sample']:.1f} %, "
         f"beyond Policy.act {100 * s['overhead_beyond_act']:.1f} %"),
    ]
    print(f"\n{result['env']}  num_envs={n}  steps={result['steps']}  repeats={result['repeats']}  "
          f"PPO n_steps={result['ppo_n_steps']}  (medians over repeats)")
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>{vwidth}}  {note}")
    print("  per repeat: " + "; ".join(
        f"raw {rec['raw']['steps_per_s']:.0f}, collect {rec['collect']['steps_per_s']:.0f}, "
        f"ppo {rec['ppo']['steps_per_s']:.0f}, overhead {100 * rec['overhead']:.1f} %"
        for rec in result["per_repeat"]))


def profile(args: argparse.Namespace) -> None:
    torch.set_num_threads(TORCH_THREADS)
    with tempfile.TemporaryDirectory(prefix="drl_ros_profile_") as tmp:
        config = train_config(args.env, args.num_envs, args.profile, args.n_steps, Path(tmp) / "run", args.seed)
        trainer = Trainer(config, Path(tmp) / "run", progress=False)
        progress = _Progress(config.total_steps, 0, enabled=False)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        trainer._run_on_policy(progress)
        profiler.disable()
        seconds = time.perf_counter() - start
        trainer.metrics.close()
        trainer.close()
    print(f"profiled PPO trainer loop: {args.env}, num_envs={args.num_envs}, {trainer.steps} steps, "
          f"{seconds:.1f} s under cProfile")
    if args.profile_out:
        Path(args.profile_out).parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(args.profile_out)
        print(f"stats written to {args.profile_out}")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(args.profile_top)
        print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="drl_ros/KukaReach-v0")
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per variant (summed over copies)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-steps", type=int, default=512, help="PPO rollout length per env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/throughput.json")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="profile the PPO trainer loop for STEPS env steps instead of benchmarking")
    parser.add_argument("--profile-out", default=None, help="write the cProfile stats here")
    parser.add_argument("--profile-top", type=int, default=30)
    args = parser.parse_args(argv)
    if args.profile:
        profile(args)
        return 0
    result = benchmark(args)
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
