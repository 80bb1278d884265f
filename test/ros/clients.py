"""ROS clients the tests run in their own processes: ``python clients.py COMMAND ARGS.json``.

Each prints one JSON line with its result. Service calls use ``call_async`` and a ``spin_once``
loop (never ``spin_until_future_complete`` on a hot path).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import rclpy
from drl_ros.msg import Observation, PolicyWeights, TrainingStats
from drl_ros.srv import GetAction, ResetEnv, StepEnv
from rclpy.node import Node

from drl_ros.ros import qos
from drl_ros.ros.conversions import encode_policy, from_array, to_f32_array


def call(node: Node, client: Any, request: Any, timeout: float = 10.0) -> Any:
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done():
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from {client.srv_name} within {timeout} s")
    return future.result()


def wait_service(node: Node, client: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not client.service_is_ready():
        rclpy.spin_once(node, timeout_sec=0.1)
        if time.monotonic() > deadline:
            raise TimeoutError(f"service {client.srv_name} did not appear within {timeout} s")


def spin_for(node: Node, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.02)


def get_action(node: Node, client: Any, observation: Any, deterministic: bool = True) -> dict[str, Any]:
    request = GetAction.Request()
    request.observation = to_f32_array(observation) if len(observation) else to_f32_array([])
    request.deterministic = deterministic
    response = call(node, client, request)
    return {"success": response.success, "message": response.message,
            "action": from_array(response.action).tolist(), "version": response.policy_version}


# -- commands -----------------------------------------------------------------------------------
def get_actions(node: Node, service: str, observations: list, deterministic: bool = True) -> Any:
    client = node.create_client(GetAction, service)
    wait_service(node, client)
    return [get_action(node, client, np.asarray(o, dtype=np.float32) if o is not None else [], deterministic)
            for o in observations]


def raw_requests(node: Node, service: str, requests: list) -> Any:
    """Requests given as plain lists (may hold NaN / wrong lengths), sent unvalidated."""
    client = node.create_client(GetAction, service)
    wait_service(node, client)
    out = []
    for values in requests:
        request = GetAction.Request()
        request.observation = [float(v) for v in values]
        request.deterministic = True
        response = call(node, client, request)
        out.append({"success": response.success, "message": response.message, "version": response.policy_version,
                    "action": from_array(response.action).tolist()})
    return out


def swap(node: Node, service: str, policies: list, observation: list, timeout: float = 60.0) -> Any:
    """Publish each ``(policy_stem, version)`` latched, and wait until the server answers with it."""
    from drl_ros.core.policy import Policy

    pub = node.create_publisher(PolicyWeights, "policy_weights", qos.LATCHED)
    client = node.create_client(GetAction, service)
    wait_service(node, client)
    seen = []
    for stem, version in policies:
        policy = Policy.load(stem)
        policy.version = version
        v, metadata, sha, blob = encode_policy(policy)
        msg = PolicyWeights(version=v, metadata_json=metadata, sha256=sha)
        msg.safetensors = blob
        pub.publish(msg)
        deadline = time.monotonic() + timeout
        while True:
            answer = get_action(node, client, np.asarray(observation, dtype=np.float32))
            if answer["version"] == version or time.monotonic() > deadline:
                break
            spin_for(node, 0.05)
        expected = policy.act(np.asarray(observation, dtype=np.float32), deterministic=True).env_action[0]
        seen.append({"version": answer["version"], "action": answer["action"], "expected": expected.tolist()})
    return seen


def evaluate(node: Node, episodes: int, seed: int, bridge: str = "eval/", policy: str = "get_action") -> Any:
    """Whole episodes in lock-step: reset_env / step_env on a bridge, get_action on a policy server."""
    reset = node.create_client(ResetEnv, bridge + "reset_env")
    step = node.create_client(StepEnv, bridge + "step_env")
    act = node.create_client(GetAction, policy)
    for c in (reset, step, act):
        wait_service(node, c)
    successes, returns, versions = [], [], set()
    for episode in range(episodes):
        r = call(node, reset, ResetEnv.Request(seeded=True, seed=seed + episode))
        obs, total, done, success = from_array(r.observation), 0.0, False, False
        while not done:
            a = get_action(node, act, obs, deterministic=True)
            if not a["success"]:
                raise RuntimeError(a["message"])
            versions.add(a["version"])
            request = StepEnv.Request()
            request.action = to_f32_array(a["action"])
            s = call(node, step, request)
            obs, total, done, success = from_array(s.observation), total + s.reward, s.terminated or s.truncated, \
                s.is_success
        successes.append(bool(success))
        returns.append(total)
    return {"success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns)),
            "versions": sorted(versions)}


def train_until(node: Node, target: float, budget_s: float, eval_episodes: int, final_episodes: int,
                seed: int, policy: str, bridge: str, min_updates: int = 2000) -> Any:
    """Follow training_stats; evaluate over ROS whenever a new policy version is out. When an
    evaluation reaches ``target``, confirm it with a longer one (``final_episodes``, other seeds):
    that one's result is the answer. Training goes on throughout (the served policy may move on
    between episodes); the time budget bounds it all."""
    stats: list[TrainingStats] = []
    node.create_subscription(TrainingStats, "training_stats", stats.append, qos.STATUS)
    start = time.monotonic()
    history, final = [], None
    last_eval_version = -1
    while time.monotonic() - start < budget_s:
        spin_for(node, 2.0)
        if not stats:
            continue
        s = stats[-1]
        if s.updates >= min_updates and s.policy_version > last_eval_version:
            last_eval_version = s.policy_version
            result = evaluate(node, eval_episodes, seed, bridge, policy)
            history.append({"t": round(time.monotonic() - start, 1), "updates": s.updates,
                            "transitions": s.transitions_received, "pending": s.pending_updates,
                            "train_success": s.success_rate, **result})
            if result["success_rate"] >= target:
                final = evaluate(node, final_episodes, seed + 10_000, bridge, policy)
                history.append({"t": round(time.monotonic() - start, 1), "confirm": True, **final})
                if final["success_rate"] >= target:
                    break
    s = stats[-1] if stats else None
    return {"history": history, "final": final, "elapsed": time.monotonic() - start,
            "updates": s.updates if s else 0, "transitions": s.transitions_received if s else 0}


def watch_hardware(node: Node, seconds: float, namespace: str, driver_topic: str) -> Any:
    """Observations of a hardware bridge and the commands its driver receives."""
    from std_msgs.msg import Float64MultiArray

    observations: list[Observation] = []
    commands: list[Any] = []
    node.create_subscription(Observation, f"{namespace}/observation", observations.append, qos.OBSERVATION)
    node.create_subscription(Float64MultiArray, f"{namespace}/{driver_topic}", commands.append, qos.COMMAND)
    # Wait until the chain runs (node start-up takes seconds), then watch for the given time.
    deadline = time.monotonic() + 120
    while not commands and time.monotonic() < deadline:
        spin_for(node, 0.2)
    observations.clear()
    commands.clear()
    spin_for(node, seconds)
    ends = [o for o in observations if o.truncated or o.terminated]
    versions = sorted({o.action_policy_version for o in observations if o.has_previous_step})
    return {"observations": len(observations), "commands": len(commands),
            "episodes": len(ends), "successes": sum(o.is_success for o in ends),
            "versions": versions, "command_width": len(commands[-1].data) if commands else 0,
            "final_distances": [float(np.linalg.norm(from_array(o.final_observation)[20:23])) for o in ends]}


def run_command(functions: dict[str, Any]) -> None:
    """A client script's entry point: ``python <script> <function> <kwargs.json>`` calls one of
    ``functions`` with a fresh node and prints its JSON result."""
    command, args_file = sys.argv[1], sys.argv[2]
    with open(args_file) as f:
        kwargs = json.load(f)
    rclpy.init()
    node = rclpy.create_node(f"test_client_{command}")
    try:
        result = functions[command](node, **kwargs)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    run_command(globals())
