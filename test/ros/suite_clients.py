"""ROS clients of the suite-reliability and legged-hardware tests, each run in its own process:
``python suite_clients.py COMMAND ARGS.json`` prints one JSON line with its result (as clients.py;
test/ros/suite_proc.py starts them, in the foreground or in the background).
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import numpy as np
import rclpy
from clients import get_action, run_command, spin_for, wait_service
from drl_ros.msg import Action, ExperienceBatch, Observation, PolicyWeights, TrainingStats
from drl_ros.srv import GetAction
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from drl_ros.ros import qos
from drl_ros.ros.conversions import Transitions, fill_experience, from_array, to_f32_array

# Deep enough that a recorder never drops a message of a test run.
RECORD = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5000, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def drive_legged(node: Node, namespace: str, driver_topic: str, seconds: float, amplitude: float,
                 frequency: float) -> Any:
    """Act as the policy behind a legged hardware bridge: answer every observation with a smooth
    joint-space action; record the observations, the simulator's ground truth and the commands the
    driver receives."""
    from std_msgs.msg import Float64MultiArray

    observations: list[Observation] = []
    truth: dict[int, list[float]] = {}
    commands: list[list[float]] = []
    sent: dict[int, list[float]] = {}
    pub = node.create_publisher(Action, f"{namespace}/command", qos.COMMAND)
    start = [0.0]

    def on_observation(msg: Observation) -> None:
        observations.append(msg)
        t = time.monotonic() - start[0]
        phase = np.arange(12) * 0.7
        action = (amplitude * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)
        out = Action(sequence=msg.sequence, policy_version=7, log_prob=-1.0)
        out.action = to_f32_array(action)
        pub.publish(out)
        sent[msg.sequence] = action.tolist()

    node.create_subscription(Observation, f"{namespace}/observation", on_observation, RECORD)
    node.create_subscription(Observation, f"{namespace}/ground_truth",
                             lambda m: truth.__setitem__(_stamp(m.header), from_array(m.observation).tolist()),
                             RECORD)
    node.create_subscription(Float64MultiArray, f"{namespace}/{driver_topic}",
                             lambda m: commands.append(list(m.data)), RECORD)
    deadline = time.monotonic() + 120
    while not observations and time.monotonic() < deadline:
        spin_for(node, 0.1)  # node start-up takes seconds
    start[0] = time.monotonic()
    observations.clear()
    spin_for(node, seconds)
    rows = [{"stamp": _stamp(o.header), "sequence": o.sequence, "observation": from_array(o.observation).tolist(),
             "has_previous_step": o.has_previous_step, "action": from_array(o.action).tolist(),
             "action_policy_version": o.action_policy_version, "terminated": o.terminated,
             "truncated": o.truncated} for o in observations]
    return {"observations": rows, "truth": {str(k): v for k, v in truth.items()}, "commands": commands,
            "sent": {str(k): v for k, v in sent.items()}}


def feed_experience(node: Node, batches: int, size: int, seed: int, source_name: str) -> Any:
    """Publish ``batches`` batches of random Kuka-reach-sized transitions as one collector stream
    would (one session, consecutive sequences), each once the learner has taken the previous one;
    returns the learner's statistics after the last."""
    stats: list[TrainingStats] = []
    pub = node.create_publisher(ExperienceBatch, "experience", qos.EXPERIENCE)
    node.create_subscription(TrainingStats, "training_stats", stats.append, qos.STATUS)
    deadline = time.monotonic() + 120
    while (pub.get_subscription_count() == 0 or not stats) and time.monotonic() < deadline:
        spin_for(node, 0.1)
    rng = np.random.default_rng(seed)
    session = int(rng.integers(1, 2**62))
    received = stats[-1].transitions_received
    for b in range(batches):
        obs = rng.uniform(-0.5, 0.5, (size + 1, 23)).astype(np.float32)
        truncated = np.zeros(size, bool)
        truncated[-1] = b % 2 == 1
        t = Transitions(obs=obs[:-1], action=rng.uniform(-1, 1, (size, 3)).astype(np.float32),
                        reward=rng.normal(size=size).astype(np.float32), next_obs=obs[1:],
                        terminated=np.zeros(size, bool), truncated=truncated, is_success=np.zeros(size, bool),
                        log_prob=np.zeros(size, np.float32), policy_version=np.zeros(size, np.int64))
        msg = ExperienceBatch(source=source_name, session=session, bridge_session=session,
                              first_sequence=1 + b * size, contiguous=b > 0)
        pub.publish(fill_experience(msg, t))
        received += size
        while stats[-1].transitions_received < received and time.monotonic() < deadline:
            spin_for(node, 0.02)
    while stats[-1].pending_updates > 0 and time.monotonic() < deadline:
        spin_for(node, 0.05)  # the learner has worked off every update owed
    s = stats[-1]
    return {"transitions": s.transitions_received, "updates": s.updates, "policy_version": s.policy_version}


def learner_after_restart(node: Node, wait_s: float) -> Any:
    """The first training statistics and the latched weights of a (restarted) learner."""
    stats: list[TrainingStats] = []
    weights: list[PolicyWeights] = []
    node.create_subscription(TrainingStats, "training_stats", stats.append, qos.STATUS)
    node.create_subscription(PolicyWeights, "policy_weights", weights.append, qos.LATCHED)
    deadline = time.monotonic() + wait_s
    while (not stats or not weights) and time.monotonic() < deadline:
        spin_for(node, 0.05)
    if not stats or not weights:
        raise TimeoutError("no statistics or weights from the learner")
    s, w = stats[0], weights[-1]
    return {"updates": s.updates, "transitions": s.transitions_received, "policy_version": s.policy_version,
            "weights_version": w.version, "weights_extra": json.loads(w.metadata_json).get("extra", {})}


def watch_versions(node: Node, namespaces: list[str], seconds: float, min_transitions: int) -> Any:
    """Follow the shared learner until every source has sent ``min_transitions``; then wait until
    each namespace's policy_server answers with the newest published version."""
    stats: list[TrainingStats] = []
    weights: list[int] = []
    node.create_subscription(TrainingStats, "/training_stats", stats.append, qos.STATUS)
    node.create_subscription(PolicyWeights, "/policy_weights", lambda m: weights.append(m.version), qos.LATCHED)
    clients = {ns: node.create_client(GetAction, f"{ns}/get_action") for ns in namespaces}
    for client in clients.values():
        wait_service(node, client, timeout=seconds)
    start = time.monotonic()
    deadline = start + seconds

    def counts() -> dict[str, int]:
        return dict(zip(stats[-1].sources, (int(v) for v in stats[-1].source_transitions))) if stats else {}

    while time.monotonic() < deadline:
        spin_for(node, 0.5)
        c = counts()
        if len(c) >= len(namespaces) and min(c.values()) >= min_transitions and weights and weights[-1] > 0:
            break
    served: dict[str, int] = {}
    target = max(weights) if weights else -1
    observation = np.zeros(23, dtype=np.float32)
    while time.monotonic() < deadline + 30:
        served = {ns: get_action(node, client, observation)["version"] for ns, client in clients.items()}
        if all(v >= target for v in served.values()):
            break
        spin_for(node, 0.2)
    s = stats[-1] if stats else None
    return {"sources": counts(), "published": target, "served": served, "elapsed": time.monotonic() - start,
            "transitions": s.transitions_received if s else 0, "updates": s.updates if s else 0,
            "stream_resets": s.stream_resets if s else 0}


def record_streams(node: Node, namespace: str) -> Any:
    """Record a bridge's observations (with session and sequence), the experience batches on
    /experience (sessions and sequences only) and the learner's statistics until SIGTERM; then print
    them. The test kills and restarts nodes meanwhile.

    The bridge runs with autostart off, and this recorder drives its lifecycle: configure, wait
    until the bridge's observation publisher is in the graph, then activate (the first observation
    goes out on activation). So no observation is published before the recorder has discovered
    its publisher, however slow discovery is on a loaded machine; a restarted bridge is brought up
    the same way."""
    from clients import call
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    observations: list[dict[str, Any]] = []
    stats: list[TrainingStats] = []

    def on_observation(m: Observation) -> None:
        end = m.terminated or m.truncated
        observations.append({"session": m.session, "sequence": m.sequence, "has_previous_step": m.has_previous_step,
                             "observation": from_array(m.observation).tolist(),
                             "next": from_array(m.final_observation if end else m.observation).tolist()})

    batches: list[dict[str, int]] = []
    streams: dict[tuple[int, int], int] = {}  # (collector session, bridge session) -> transitions sent

    def on_experience(m: ExperienceBatch) -> None:
        batches.append({"session": m.session, "bridge_session": m.bridge_session,
                        "first_sequence": m.first_sequence, "count": m.count})
        key = (m.session, m.bridge_session)
        streams[key] = streams.get(key, 0) + m.count

    node.create_subscription(Observation, f"{namespace}/observation", on_observation, RECORD)
    node.create_subscription(ExperienceBatch, "/experience", on_experience, RECORD)
    node.create_subscription(TrainingStats, "/training_stats", stats.append, qos.STATUS)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    topic = f"{namespace}/observation"
    get_state = node.create_client(GetState, f"{namespace}/gym_bridge/get_state")
    change = node.create_client(ChangeState, f"{namespace}/gym_bridge/change_state")

    def bring_up_bridge() -> None:
        if not (get_state.service_is_ready() and change.service_is_ready()):
            return
        try:  # the graph may still show the services of a bridge just killed: no answer then
            label = call(node, get_state, GetState.Request(), timeout=2.0).current_state.label
        except TimeoutError:
            return
        if label != "unconfigured":
            return
        publishers = node.count_publishers(topic)  # may still count a killed predecessor's
        call(node, change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
        deadline = time.monotonic() + 30
        while node.count_publishers(topic) <= publishers and time.monotonic() < deadline:
            spin_for(node, 0.05)
        spin_for(node, 0.5)  # the reader side of the match completes a moment after the graph shows it
        call(node, change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE)))

    print(json.dumps({"ready": True}), flush=True)
    last_progress = last_lifecycle = 0.0
    while not stop[0]:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() - last_lifecycle > 0.3:
            last_lifecycle = time.monotonic()
            bring_up_bridge()
        if stats and time.monotonic() - last_progress > 0.5:
            last_progress = time.monotonic()
            # Per stream (collector session, bridge session, in the order they appeared): what the
            # collectors sent, so a test can tell when the learner must hold a new stream's data.
            sent = list(streams.values())
            print(json.dumps({"progress": {"transitions": stats[-1].transitions_received,
                                           "updates": stats[-1].updates,
                                           "collector_sessions": len({k[0] for k in streams}),
                                           "bridge_sessions": len({k[1] for k in streams}),
                                           "sent_before_latest_stream": sum(sent[:-1])}}), flush=True)
    history = [{"updates": s.updates, "transitions": s.transitions_received, "stream_resets": s.stream_resets,
                "sources": dict(zip(s.sources, (int(v) for v in s.source_transitions)))} for s in stats]
    return {"observations": observations, "stats": history, "batches": batches}


if __name__ == "__main__":
    run_command(globals())
