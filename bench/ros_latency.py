"""ROS 2 latency of the policy path, loopback, every participant in its own process.

    python bench/ros_latency.py [--calls 2000] [--messages 1000] [--rate 50] [--out bench/results/ros_latency.json]

Measures, against DESIGN.md section 7:
  * get_action service round trip (client ``call_async`` + ``spin_once`` loop) → p50 / p99;
  * observation → shielded command: an Observation published on ``observation`` until the
    safety_shield's ``command`` answering it arrives (policy_server → raw_action → safety_shield)
    at a fixed rate → p50 / p99 and lost messages;
  * policy_server CPU share of one core during the topic phase.
The policy is a 2x256 SAC actor with random weights (inference cost does not depend on training).
Needs the ROS build (tools/build_ros.sh) and rclpy in this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"service_p50_ms": 1.0, "service_p99_ms": 3.0, "topic_p50_ms": 1.5, "policy_server_cpu": 0.10}


def _env(install: Path, domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(install / "lib" / "python3.11" / "site-packages"),
                "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(install / "lib"), env.get("LD_LIBRARY_PATH")])),
                "AMENT_PREFIX_PATH": os.pathsep.join([str(install), sys.prefix]), "ROS_DOMAIN_ID": str(domain),
                "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    return env


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(args: argparse.Namespace) -> None:
    """The measuring process (imports rclpy; run by the parent with the build's environment)."""
    import numpy as np
    import rclpy

    from drl_ros.msg import Action, Observation
    from drl_ros.ros import qos
    from drl_ros.ros.conversions import to_f32_array
    from drl_ros.srv import GetAction

    rclpy.init()
    node = rclpy.create_node("ros_latency_bench")
    rng = np.random.default_rng(0)
    service = node.create_client(GetAction, "get_action")
    deadline = time.monotonic() + 120
    while not service.service_is_ready():
        rclpy.spin_once(node, timeout_sec=0.1)
        if time.monotonic() > deadline:
            raise SystemExit("policy_server did not come up")
    obs = rng.uniform(-1, 1, size=(64, 23)).astype(np.float32)

    def call(i: int) -> float:
        request = GetAction.Request(deterministic=True)
        request.observation = to_f32_array(obs[i % 64])
        t0 = time.perf_counter()
        future = service.call_async(request)
        while not future.done():
            rclpy.spin_once(node, timeout_sec=0.01)
        dt = time.perf_counter() - t0
        assert future.result().success, future.result().message
        return dt

    for i in range(100):  # warm-up: discovery, first allocations
        call(i)
    service_ms = np.array([call(i) for i in range(args.calls)]) * 1e3

    sent: dict[int, float] = {}
    latency: dict[int, float] = {}

    def on_command(msg: Action) -> None:
        if msg.sequence in sent and msg.sequence not in latency:
            latency[msg.sequence] = time.perf_counter() - sent[msg.sequence]

    pub = node.create_publisher(Observation, "observation", qos.OBSERVATION)
    node.create_subscription(Action, "command", on_command, qos.COMMAND)
    while pub.get_subscription_count() == 0 or node.count_publishers("command") == 0:
        rclpy.spin_once(node, timeout_sec=0.1)
    period = 1.0 / args.rate
    server_pid = int(args.server_pid)
    cpu0, wall0 = _cpu_seconds(server_pid), time.monotonic()
    next_send = time.perf_counter()
    for seq in range(1, args.messages + 1):
        msg = Observation(sequence=seq)
        msg.observation = to_f32_array(obs[seq % 64])
        while time.perf_counter() < next_send:
            rclpy.spin_once(node, timeout_sec=max(0.0, next_send - time.perf_counter()))
        sent[seq] = time.perf_counter()
        pub.publish(msg)
        next_send += period
    end = time.perf_counter() + 2.0
    while len(latency) < len(sent) and time.perf_counter() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
    cpu = (_cpu_seconds(server_pid) - cpu0) / (time.monotonic() - wall0)
    topic_ms = np.array(list(latency.values())) * 1e3
    node.destroy_node()
    rclpy.shutdown()
    print(json.dumps({
        "service_calls": int(service_ms.size), "service_p50_ms": float(np.percentile(service_ms, 50)),
        "service_p99_ms": float(np.percentile(service_ms, 99)),
        "topic_messages": len(sent), "topic_lost": len(sent) - len(latency), "topic_rate_hz": args.rate,
        "topic_p50_ms": float(np.percentile(topic_ms, 50)) if topic_ms.size else None,
        "topic_p99_ms": float(np.percentile(topic_ms, 99)) if topic_ms.size else None,
        "policy_server_cpu": cpu}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ros_latency.json"))
    parser.add_argument("--install", default=os.environ.get("DRL_ROS_BUILD", str(ROOT / "build" / "ros")) + "/install")
    parser.add_argument("--domain", type=int, default=88)
    parser.add_argument("--role", default="main", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        client(args)
        return 0

    import torch

    from drl_ros.core.policy import Policy
    from drl_ros.core.spaces import BoxSpec

    install = Path(args.install)
    if not (install / "lib" / "python3.11" / "site-packages" / "drl_ros" / "msg").exists():
        print(f"no ROS build at {install}: run tools/build_ros.sh", file=sys.stderr)
        return 2
    env = _env(install, args.domain)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        policy = Policy.create(BoxSpec((-1.0,) * 23, (1.0,) * 23), BoxSpec((-1.0,) * 3, (1.0,) * 3),
                               "squashed_gaussian", [256, 256], "relu")
        policy.version = 1
        policy.save(Path(tmp) / "policy")
        procs = [subprocess.Popen([sys.executable, "-m", f"drl_ros.nodes.{name}", "--ros-args", *params],
                                  env=env, cwd=tmp, start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                 for name, params in [("policy_server", ["-p", f"policy_file:={tmp}/policy", "-p", "deterministic:=true",
                                                         "-p", "hot_swap:=false"]),
                                      ("safety_shield", [])]]
        try:
            out = subprocess.run([sys.executable, __file__, "--role", "client", "--calls", str(args.calls),
                                  "--messages", str(args.messages), "--rate", str(args.rate),
                                  "--server-pid", str(procs[0].pid)],
                                 env=env, cwd=tmp, capture_output=True, text=True, timeout=900)
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGINT)
            for proc in procs:
                proc.wait(timeout=20)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return 1
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_average_1min"] = os.getloadavg()[0]
    result["targets"] = TARGETS
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"get_action round trip ({result['service_calls']} calls): p50 {result['service_p50_ms']:.3f} ms "
          f"(target {TARGETS['service_p50_ms']}), p99 {result['service_p99_ms']:.3f} ms (target {TARGETS['service_p99_ms']})")
    print(f"observation -> shielded command at {args.rate:g} Hz ({result['topic_messages']} messages, "
          f"{result['topic_lost']} lost): p50 {result['topic_p50_ms']:.3f} ms (target {TARGETS['topic_p50_ms']}), "
          f"p99 {result['topic_p99_ms']:.3f} ms")
    print(f"policy_server CPU at {args.rate:g} Hz: {100 * result['policy_server_cpu']:.1f} % of one core "
          f"(target <= {100 * TARGETS['policy_server_cpu']:.0f} %); load average {result['load_average_1min']:.1f}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
