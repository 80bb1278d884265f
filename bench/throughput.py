#!/usr/bin/env python3
"""Embedded-training throughput and framework overhead, measured side by side in one run.

Variants. ``raw``, ``factory``, ``collect`` and ``forward`` are interleaved one rollout-sized chunk
(``n_steps`` vector steps) at a time, rotating which goes first, so that the load of a shared
machine hits them alike; the ``ppo`` run comes before or after that block, alternating between
repeats.

``raw``
    A Gymnasium ``SyncVectorEnv`` with same-step autoreset (as
    :func:`drl_ros.runtime.env_factory.make_vector_env` builds it) of plain ``gymnasium.make``
    copies, without drl_ros's own per-copy wrappers, stepped with uniform random actions drawn
    before the clock starts. Env steps per second, summed over the copies.
``factory``
    The same, built by ``make_vector_env`` itself (what the trainer steps, with drl_ros's
    wrappers such as the episode recorder): shows what those wrappers cost.
``collect``
    The trainer's own on-policy loop (:meth:`Trainer._run_on_policy`: ``policy.act`` on the
    batch, ``envs.step``, ``rollout.add``, episode bookkeeping, periodic logging) with the
    end-of-rollout GAE and the PPO update stubbed out, so it is collection only; called once
    per chunk with the budget raised by one rollout.
``forward``
    On the observation batches of the latest ``collect`` rollout, one call per batch, under
    ``no_grad``: the network forward pass (:meth:`Policy.forward` on tensors: normalizer +
    actor network, the graph that is exported), then ``actor.sample`` (network + sampling +
    log-probability), then the full :meth:`Policy.act` (numpy in, numpy out).
``ppo``
    :class:`~drl_ros.runtime.trainer.Trainer` with algorithm ``ppo`` (defaults except
    ``n_steps``), timed around its training loop; the time spent in the GAE pass and in
    ``PPO.update`` is split out, and the whole ``train()`` call (final checkpoint, policy
    file, final evaluation, plot) is reported apart.

All timings read this process's CPU time by default (``--clock cpu``; ``--clock wall`` for
``perf_counter``): everything runs on one thread, so CPU time is what an idle core's wall clock
would show, and on a shared machine it does not count the time other jobs hold the core.

Framework overhead per env step (DESIGN.md section 7, target ≤ 25 %)::

    (collect time − raw time − network forward time) / raw time

(so the cost of drl_ros's env wrappers counts as overhead, not as simulator time)
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import load_config
from drl_ros.runtime.env_factory import make_env, make_vector_env
from drl_ros.runtime.trainer import Trainer, _Progress

TORCH_THREADS = 1  # the TrainConfig default; every variant runs under it

CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
clock: Callable[[], float] = time.process_time
"""What every measurement reads (``--clock``). ``cpu`` (this process's CPU time) is the default:
everything here runs on one thread, so it is the wall time an idle core would give, and it does
not count the time other people's jobs hold the core."""


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
        start = clock()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += clock() - start
            self.calls += 1


# -- variants --------------------------------------------------------------------------------
class _Interleaved:
    """``raw``, ``factory``, ``collect`` and ``forward``, interleaved one rollout-sized chunk at a time.

    A chunk is ``n_steps`` vector steps: ``n_steps`` random-action steps of the plain vector env
    and of the ``make_vector_env`` one, one call of the trainer's on-policy loop with its budget
    raised by one rollout, and ``n_steps`` forward calls on the observations of the latest
    collected rollout. The order rotates from chunk to chunk. An untimed chunk of each warms up.
    """

    def __init__(self, config: TrainConfig, run_dir: Path, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.num_envs = config.env.num_envs
        self.n_steps = config.ppo.n_steps
        # raw: plain Gymnasium copies, none of drl_ros's wrappers; factory: what the trainer steps.
        self.raw_envs: VectorEnv[Any, Any, Any] = SyncVectorEnv(
            [lambda: make_env(config.env) for _ in range(self.num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
        self.factory_envs = make_vector_env(config.env)
        self.raw_envs.action_space.seed(seed)
        self.trainer = Trainer(config, run_dir, progress=False)
        self.trainer._finish_rollout = lambda algo, rollout, last_obs: None  # type: ignore[method-assign]
        self.trainer.algorithm.update = lambda batch, rng=None: {}  # type: ignore[method-assign]
        self.progress = _Progress(config.total_steps, 0, enabled=False)
        self.seconds = dict.fromkeys(("raw", "factory", "collect", "net", "sample", "act"), 0.0)
        self.chunks = 0

    def close(self) -> None:
        self.trainer.metrics.close()
        self.trainer.close()
        self.raw_envs.close()
        self.factory_envs.close()

    def raw(self, envs: VectorEnv[Any, Any, Any], reset: bool = False) -> float:
        """``n_steps`` random-action steps; the envs run on across chunks, like the trainer's."""
        actions = [self.raw_envs.action_space.sample() for _ in range(self.n_steps)]
        if reset:
            envs.reset(seed=self.seed)
        step = envs.step
        start = clock()
        for action in actions:
            step(action)
        return clock() - start

    def collect(self) -> float:
        trainer = self.trainer
        trainer.config.total_steps = trainer.steps + self.n_steps * self.num_envs
        start = clock()
        trainer._run_on_policy(self.progress)
        return clock() - start

    def forward(self) -> dict[str, float]:
        """Network forward (``Policy.forward``), ``actor.sample`` and ``Policy.act`` on the
        latest rollout's observation batches, one pass each."""
        policy = self.trainer.policy
        assert self.trainer.rollout is not None
        batches_np = [np.ascontiguousarray(o) for o in self.trainer.rollout.obs]
        batches_t = [torch.from_numpy(o) for o in batches_np]
        sample, normalize, act = policy.actor.sample, policy.normalize, policy.act
        seconds: dict[str, float] = {}
        with torch.no_grad():
            start = clock()
            for obs_t in batches_t:
                policy(obs_t)
            seconds["net"] = clock() - start
            start = clock()
            for obs_t in batches_t:
                sample(normalize(obs_t))
            seconds["sample"] = clock() - start
        start = clock()
        for obs in batches_np:
            act(obs)
        seconds["act"] = clock() - start
        return seconds

    def run(self, chunks: int) -> dict[str, float]:
        # One untimed chunk of each: warm-up, and observations for the first forward chunk.
        self.raw(self.raw_envs, reset=True)
        self.raw(self.factory_envs, reset=True)
        self.collect()
        self.forward()
        for chunk in range(chunks):
            jobs = ["raw", "factory", "collect", "forward"]
            for k in range(len(jobs)):
                job = jobs[(chunk + k) % len(jobs)]
                if job == "raw":
                    self.seconds["raw"] += self.raw(self.raw_envs)
                elif job == "factory":
                    self.seconds["factory"] += self.raw(self.factory_envs)
                elif job == "collect":
                    self.seconds["collect"] += self.collect()
                else:
                    for name, value in self.forward().items():
                        self.seconds[name] += value
        vector_steps = chunks * self.n_steps
        env_steps = vector_steps * self.num_envs
        result: dict[str, float] = {"chunks": chunks, "vector_steps": vector_steps, "env_steps": env_steps}
        for name, value in self.seconds.items():
            result[f"{name}_seconds"] = value
            result[f"{name}_us_per_vector_step"] = 1e6 * value / vector_steps
        for name in ("raw", "factory", "collect"):
            result[f"{name}_steps_per_s"] = env_steps / self.seconds[name]
        return result


def run_interleaved(config: TrainConfig, run_dir: Path, seed: int, steps: int) -> dict[str, float]:
    bench = _Interleaved(config, run_dir, seed)
    try:
        return bench.run(max(1, -(-steps // (config.ppo.n_steps * config.env.num_envs))))
    finally:
        bench.close()


def run_ppo(config: TrainConfig, run_dir: Path) -> dict[str, float]:
    start = clock()
    trainer = Trainer(config, run_dir, progress=False)
    construct = clock() - start
    try:
        loop = _Timed(trainer._run_on_policy)
        gae = _Timed(trainer._finish_rollout)
        update = _Timed(trainer.algorithm.update)
        trainer._run_on_policy = loop  # type: ignore[method-assign]
        trainer._finish_rollout = gae  # type: ignore[method-assign]
        trainer.algorithm.update = update  # type: ignore[method-assign]
        start = clock()
        result = trainer.train()
        train_total = clock() - start
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
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    repeats: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="drl_ros_bench_") as tmp:
        for r in range(args.repeats):
            seed = args.seed + r
            record: dict[str, Any] = {"order": []}
            variants = ["raw+collect+forward", "ppo"]
            if r % 2 == 1:
                variants.reverse()
            for name in variants:
                if name == "ppo":
                    run_dir = Path(tmp) / f"ppo-{r}"
                    config = train_config(args.env, args.num_envs, args.steps, args.n_steps, run_dir, seed)
                    record["ppo"] = run_ppo(config, run_dir)
                else:
                    run_dir = Path(tmp) / f"interleaved-{r}"
                    config = train_config(args.env, args.num_envs, args.steps, args.n_steps, run_dir, seed)
                    record["interleaved"] = run_interleaved(config, run_dir, seed, args.steps)
                record["order"].append(name)
            il = record["interleaved"]
            raw_us, collect_us = il["raw_us_per_vector_step"], il["collect_us_per_vector_step"]
            record["overhead"] = (collect_us - raw_us - il["net_us_per_vector_step"]) / raw_us
            record["overhead_beyond_sample"] = (collect_us - raw_us - il["sample_us_per_vector_step"]) / raw_us
            record["overhead_beyond_act"] = (collect_us - raw_us - il["act_us_per_vector_step"]) / raw_us
            record["ppo_over_raw"] = record["ppo"]["steps_per_s"] / il["raw_steps_per_s"]
            record["collect_over_raw"] = il["collect_steps_per_s"] / il["raw_steps_per_s"]
            record["factory_over_raw"] = il["factory_steps_per_s"] / il["raw_steps_per_s"]
            repeats.append(record)
            print(f"repeat {r + 1}/{args.repeats}: raw {il['raw_steps_per_s']:.0f}/s, "
                  f"collect {il['collect_steps_per_s']:.0f}/s, ppo {record['ppo']['steps_per_s']:.0f}/s, "
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
        "raw_steps_per_s": med(("interleaved", "raw_steps_per_s")),
        "ppo_steps_per_s": med(("ppo", "steps_per_s")),
        "ppo_over_raw": med(("ppo_over_raw",)),
        "collect_steps_per_s": med(("interleaved", "collect_steps_per_s")),
        "factory_steps_per_s": med(("interleaved", "factory_steps_per_s")),
        "factory_over_raw": med(("factory_over_raw",)),
        "collect_over_raw": med(("collect_over_raw",)),
        "raw_us_per_vector_step": med(("interleaved", "raw_us_per_vector_step")),
        "collect_us_per_vector_step": med(("interleaved", "collect_us_per_vector_step")),
        "factory_us_per_vector_step": med(("interleaved", "factory_us_per_vector_step")),
        "net_us_per_call": med(("interleaved", "net_us_per_vector_step")),
        "sample_us_per_call": med(("interleaved", "sample_us_per_vector_step")),
        "act_us_per_call": med(("interleaved", "act_us_per_vector_step")),
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
        "clock": args.clock,
        "wall_seconds": time.perf_counter() - wall_start,
        "cpu_seconds": time.process_time() - cpu_start,
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
        ("raw env stepping", f"{s['raw_steps_per_s']:,.0f} steps/s",
         f"{s['raw_us_per_vector_step']:,.1f} µs / vector step"),
        ("make_vector_env stepping", f"{s['factory_steps_per_s']:,.0f} steps/s",
         f"{s['factory_us_per_vector_step']:,.1f} µs / vector step; factory/raw {s['factory_over_raw']:.2f}"),
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
         (f"target ≤ 25 %; beyond actor.sample {100 * s['overhead_beyond_sample']:.1f} %, "
          f"beyond Policy.act {100 * s['overhead_beyond_act']:.1f} %")),
    ]
    print(f"\n{result['env']}  num_envs={n}  steps={result['steps']}  repeats={result['repeats']}  "
          f"PPO n_steps={result['ppo_n_steps']}  clock={result['clock']}  (medians over repeats)")
    print(f"  run took {result['wall_seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU; "
          f"load average at the end {result['machine'].get('loadavg', '?')}")
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>{vwidth}}  {note}")
    print("  per repeat: " + "; ".join(
        f"raw {rec['interleaved']['raw_steps_per_s']:.0f}, collect {rec['interleaved']['collect_steps_per_s']:.0f}, "
        f"ppo {rec['ppo']['steps_per_s']:.0f}, overhead {100 * rec['overhead']:.1f} %"
        for rec in result["per_repeat"]))


def profile(args: argparse.Namespace) -> None:
    torch.set_num_threads(TORCH_THREADS)
    with tempfile.TemporaryDirectory(prefix="drl_ros_profile_") as tmp:
        config = train_config(args.env, args.num_envs, args.profile, args.n_steps, Path(tmp) / "run", args.seed)
        trainer = Trainer(config, Path(tmp) / "run", progress=False)
        if args.profile_collect:  # the collect variant: no GAE, no update
            trainer._finish_rollout = lambda algo, rollout, last_obs: None  # type: ignore[method-assign]
            trainer.algorithm.update = lambda batch, rng=None: {}  # type: ignore[method-assign]
        progress = _Progress(config.total_steps, 0, enabled=False)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        trainer._run_on_policy(progress)
        profiler.disable()
        seconds = time.perf_counter() - start
        trainer.metrics.close()
        trainer.close()
    what = "collection only (update stubbed out)" if args.profile_collect else "PPO trainer loop"
    print(f"profiled {what}: {args.env}, num_envs={args.num_envs}, {trainer.steps} steps, "
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
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time (default; robust to a loaded machine); wall: perf_counter")
    parser.add_argument("--out", default="bench/results/throughput.json")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="profile the PPO trainer loop for STEPS env steps instead of benchmarking")
    parser.add_argument("--profile-out", default=None, help="write the cProfile stats here")
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument("--profile-collect", action="store_true",
                        help="profile the collect variant (GAE and update stubbed out) instead")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
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
