#!/usr/bin/env python3
"""Policy inference latency at batch 1, torch vs the exported ONNX policy on onnxruntime.

DESIGN.md section 7 target, 2x256 MLP on CPU, in process: p50 ≤ 20 µs, p99 ≤ 100 µs.

The policy is the Kuka reach SAC policy's shape: 23 observations (with the running-statistics
normalizer), a squashed-Gaussian actor with two hidden layers of 256 ReLU units, 7 actions
(a ``joint_delta`` arm; bounds other than [-1, 1] so the numpy action scaling is timed too).
It is exported with :func:`drl_ros.core.export.export_onnx` and loaded with
:class:`drl_ros.core.onnx_policy.OnnxPolicy` (onnxruntime: one intra-op thread, sequential
execution, all graph optimizations). Variants, each timed per call with ``perf_counter_ns``:

``torch_forward``
    ``Policy.forward`` on a pre-allocated tensor under ``torch.inference_mode`` (normalizer +
    actor: the exported graph), one torch thread. Normalized action, no numpy.
``torch_act``
    ``Policy.act(obs, deterministic=True)``: numpy observation in, scaled env action out.
``ort_run``
    ``InferenceSession.run`` with a ``(1, 23)`` float32 feed: the graph alone, as most code calls it.
``ort_iobinding``
    ``run_with_iobinding`` on input / output buffers bound once: the graph alone, without
    onnxruntime's per-call input conversion and output allocation.
``onnx_policy_act``
    ``OnnxPolicy.act(obs)``: numpy observation in, scaled env action out (I/O binding + clip and
    affine scaling in numpy): what a policy server on a robot computer calls.

The variants are interleaved in rounds (order rotating each round) so a shared machine's noise
hits them alike; percentiles are over all calls of all rounds, and the per-round p50s show the
spread. Garbage collection is off while timing.

Usage::

    python bench/inference_latency.py [--calls 20000] [--rounds 5] [--out bench/results/inference_latency.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from drl_ros.core.export import export_onnx
from drl_ros.core.onnx_policy import OnnxPolicy
from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec

TARGET_P50_US = 20.0
TARGET_P99_US = 100.0
OBS_DIM, ACT_DIM, HIDDEN = 23, 7, [256, 256]


def make_policy(seed: int = 0) -> Policy:
    torch.manual_seed(seed)
    obs_spec = BoxSpec(tuple([-3.0] * OBS_DIM), tuple([3.0] * OBS_DIM))
    act_spec = BoxSpec(tuple([-0.5] * ACT_DIM), tuple([0.5] * ACT_DIM))
    policy = Policy.create(obs_spec, act_spec, "squashed_gaussian", HIDDEN, "relu", normalize_observations=True)
    assert policy.normalizer is not None
    policy.normalizer.update(np.random.default_rng(seed).normal(0.0, 1.5, size=(1000, OBS_DIM)))
    return policy.eval()


def time_calls(fn: Callable[[], object], calls: int, warmup: int) -> np.ndarray:
    """Nanoseconds of each of ``calls`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(calls):
            start = clock()
            fn()
            samples[i] = clock() - start
    finally:
        gc.enable()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="timed calls per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/inference_latency.json"))
    args = parser.parse_args()

    torch.set_num_threads(1)
    policy = make_policy()
    obs = np.random.default_rng(1).uniform(-3.0, 3.0, OBS_DIM).astype(np.float32)
    with tempfile.TemporaryDirectory() as export_dir:
        result = export_onnx(policy, export_dir)
        runtime = OnnxPolicy.load(export_dir)
    session = runtime.session
    obs_batch = obs[None].copy()
    obs_tensor = torch.from_numpy(obs_batch.copy())

    # The same action from every path (to the export's tolerance) before anything is timed.
    reference = policy.act(obs, deterministic=True).env_action[0]
    np.testing.assert_allclose(runtime.act(obs), reference, rtol=0, atol=1e-5)

    def torch_forward() -> object:
        with torch.inference_mode():
            return policy(obs_tensor)

    binding = runtime._binding
    runtime._obs1[0] = obs
    variants: dict[str, Callable[[], object]] = {
        "torch_forward": torch_forward,
        "torch_act": lambda: policy.act(obs, deterministic=True),
        "ort_run": lambda: session.run([runtime.output_name], {runtime.input_name: obs_batch}),
        "ort_iobinding": lambda: session.run_with_iobinding(binding),
        "onnx_policy_act": lambda: runtime.act(obs),
    }
    names = list(variants)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            samples[name].append(time_calls(variants[name], args.calls, args.warmup))
        print(f"round {round_index + 1}/{args.rounds}: "
              + ", ".join(f"{n} {np.percentile(samples[n][-1], 50) / 1e3:.1f}" for n in names) + " (p50 µs)",
              flush=True)

    summary = {}
    for name in names:
        all_us = np.concatenate(samples[name]) / 1e3
        summary[name] = {"p50_us": float(np.percentile(all_us, 50)), "p90_us": float(np.percentile(all_us, 90)),
                         "p99_us": float(np.percentile(all_us, 99)), "mean_us": float(all_us.mean()),
                         "round_p50_us": [float(np.percentile(s, 50) / 1e3) for s in samples[name]],
                         "round_p99_us": [float(np.percentile(s, 99) / 1e3) for s in samples[name]]}
    report = {
        "benchmark": "inference_latency",
        "policy": {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "hidden_sizes": HIDDEN, "actor": "squashed_gaussian",
                   "normalize_observations": True, "batch": 1},
        "calls_per_round": args.calls, "rounds": args.rounds,
        "target": {"p50_us": TARGET_P50_US, "p99_us": TARGET_P99_US},
        "export_max_abs_diff": result.max_abs_diff,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": _version("onnxruntime"), "numpy": np.__version__, "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "loadavg": list(os.getloadavg())},
        "summary": summary,
    }
    print(f"\nbatch 1, 2x256 MLP, {args.rounds} x {args.calls} calls; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; target p50 ≤ {TARGET_P50_US:g} µs, p99 ≤ {TARGET_P99_US:g} µs")
    print(f"{'variant':18s} {'p50 µs':>8s} {'p99 µs':>8s} {'mean µs':>8s}  per-round p50")
    for name in names:
        s = summary[name]
        print(f"{name:18s} {s['p50_us']:8.1f} {s['p99_us']:8.1f} {s['mean_us']:8.1f}  "
              + " ".join(f"{v:.1f}" for v in s["round_p50_us"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return None


if __name__ == "__main__":
    sys.exit(main())
