"""ROS clients of the safety-shield tests, each run in its own process:
``python shield_clients.py COMMAND ARGS.json`` prints one JSON line with its result.

Times are wall-clock seconds (``time.time()``, the clock the nodes stamp headers with), so they
compare with the shield's header stamps across processes on one machine.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from drl_ros.msg import Action, Observation, PolicyWeights, ShieldStatus
from drl_ros.srv import GetAction, ResetEnv, StepEnv
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from drl_ros.ros import qos
from drl_ros.ros.conversions import from_array, to_f32_array

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import call, run_command, wait_service


def _stamp(header: Any) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _finite_or_none(values: Any) -> list:
    return [x if math.isfinite(x) else None for x in values]


def _status_record(msg: ShieldStatus) -> dict[str, Any]:
    return {"stamp": _stamp(msg.header), "received": time.time(), "step": msg.step, "sequence": msg.sequence,
            "active": msg.active,
            "estop": msg.estop, "fallback": msg.fallback, "reasons": list(msg.reasons),
            "latched": list(msg.latched_causes), "observation_age": msg.observation_age if
            math.isfinite(msg.observation_age) else None,
            "action_age": msg.action_age if math.isfinite(msg.action_age) else None,
            "command": _finite_or_none(msg.command), "cost": msg.cost, "reason": msg.reason}


class Recorder:
    """Subscribes to what the shield publishes and what reaches it."""

    def __init__(self, node: Node) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.raw_actions: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.joint_commands: list[list] = []
        # A deep reader queue: the tests read every step's status, and a client starved for half a
        # second on a busy machine would otherwise lose the oldest beyond the profile's depth of 10.
        node.create_subscription(ShieldStatus, "shield_status", lambda m: self.statuses.append(_status_record(m)),
                                 QoSProfile(history=qos.STATUS.history, depth=1000,
                                            reliability=qos.STATUS.reliability, durability=qos.STATUS.durability))
        node.create_subscription(Action, "raw_action", self._on_raw, qos.COMMAND)
        node.create_subscription(Action, "command", self._on_command, qos.COMMAND)
        node.create_subscription(Float64MultiArray, "joint_command",
                                 lambda m: self.joint_commands.append(_finite_or_none(m.data)), qos.COMMAND)

    def _on_raw(self, msg: Action) -> None:
        self.raw_actions.append({"stamp": _stamp(msg.header), "received": time.time(), "sequence": msg.sequence})

    def _on_command(self, msg: Action) -> None:
        self.commands.append({"stamp": _stamp(msg.header), "sequence": msg.sequence,
                              "action": _finite_or_none(from_array(msg.action).tolist()),
                              "log_prob": None if math.isnan(msg.log_prob) else msg.log_prob,
                              "version": msg.policy_version})


def _joint_state(joints: list[str], q: Any) -> JointState:
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
    msg.name = list(joints)
    msg.position = [float(x) for x in q]
    msg.velocity = [0.0] * len(joints)
    return msg


def mock_robot(node: Node, joints: list[str], q0: list[float], obs_dim: int, phases: list[dict[str, Any]],
               rate: float = 50.0, ready_file: str = "", timeout: float = 60.0) -> Any:
    """A robot that tracks the shield's joint commands, and a stream of observations for
    policy_server, scripted in phases.

    Waits until the shield outputs a command that is not the fallback, writes ``ready_file``,
    then runs each phase for its ``seconds``: ``states`` is ``track`` (joint_states = the last
    joint command, the robot follows perfectly), ``stop`` (no joint_states) or a list of positions
    (joint_states fixed there); ``call`` (``estop`` or ``reset``) is called at the phase's start.
    Returns every status, raw action and service answer with wall times, and the time of the last
    joint_states message of each phase.
    """
    rec = Recorder(node)
    state_pub = node.create_publisher(JointState, "joint_states", qos.SENSOR)
    obs_pub = node.create_publisher(Observation, "observation", qos.OBSERVATION)
    services = {name: node.create_client(Trigger, name) for name in ("estop", "reset")}
    for client in services.values():
        wait_service(node, client)
    rng = np.random.default_rng(0)
    q = np.asarray(q0, dtype=np.float64)
    seq = 0
    period = 1.0 / rate

    def publish(states: Any) -> float | None:
        nonlocal seq, q
        if rec.joint_commands and rec.joint_commands[-1] and None not in rec.joint_commands[-1]:
            q = np.asarray(rec.joint_commands[-1])
        seq += 1
        obs = Observation(sequence=seq, observation=to_f32_array(rng.uniform(-1, 1, obs_dim)))
        obs.header.stamp.sec, obs.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        obs_pub.publish(obs)
        if states == "stop":
            return None
        state_pub.publish(_joint_state(joints, q if states == "track" else states))
        return time.time()

    deadline = time.monotonic() + timeout
    while not any(not s["fallback"] for s in rec.statuses):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the shield never passed a command: {rec.statuses[-3:]}")
        publish("track")
        rclpy.spin_once(node, timeout_sec=period)
    if ready_file:
        Path(ready_file).write_text(str(time.time()))
    phase_log = []
    for phase in phases:
        entry: dict[str, Any] = {"start": time.time(), "last_state": None}
        if phase.get("call"):
            answer = call(node, services[phase["call"]], Trigger.Request())
            entry.update(call=phase["call"], success=answer.success, message=answer.message, answered=time.time())
        end = time.monotonic() + phase["seconds"]
        next_publish = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_publish:
                next_publish += period
                sent = publish(phase.get("states", "track"))
                entry["last_state"] = sent or entry["last_state"]
            rclpy.spin_once(node, timeout_sec=max(0.0, min(next_publish, end) - time.monotonic()))
        entry["end"] = time.time()
        phase_log.append(entry)
    return {"statuses": rec.statuses, "raw_actions": rec.raw_actions, "commands": rec.commands,
            "phases": phase_log}


def action_probe(node: Node, actions: list, estop_after: int = -1, timeout: float = 30.0) -> Any:
    """Action mode: send raw actions one by one; return the command and status answering each.
    The e-stop is called before action ``estop_after`` (0-based), reset after the last one."""
    pub = node.create_publisher(Action, "raw_action", qos.COMMAND)
    commands: dict[int, Any] = {}
    statuses: dict[int, Any] = {}
    node.create_subscription(Action, "command", lambda m: commands.setdefault(m.sequence, m), qos.COMMAND)
    node.create_subscription(ShieldStatus, "shield_status", lambda m: statuses.setdefault(m.sequence, m), qos.STATUS)
    estop, reset = node.create_client(Trigger, "estop"), node.create_client(Trigger, "reset")
    wait_service(node, estop)
    wait_service(node, reset)
    deadline = time.monotonic() + timeout
    while (pub.get_subscription_count() == 0 or node.count_publishers("command") == 0) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    out = []
    for i, values in enumerate(actions + [actions[0]], start=1):
        if i - 1 == estop_after:
            call(node, estop, Trigger.Request())
        if i == len(actions) + 1:  # after a reset, the first action again
            answer = call(node, reset, Trigger.Request())
            out.append({"reset": answer.success, "message": answer.message})
        msg = Action(sequence=i, policy_version=3, log_prob=-1.0)
        msg.action = [float(v) for v in values]
        pub.publish(msg)
        end = time.monotonic() + 10
        while (i not in commands or i not in statuses) and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.02)
        c, s = commands.get(i), statuses.get(i)
        out.append(None if c is None or s is None else {
            "command": _finite_or_none(from_array(c.action).tolist()), "version": c.policy_version,
            "log_prob": None if math.isnan(c.log_prob) else c.log_prob, "intervened": s.intervened,
            "non_finite": s.rejected_non_finite, "clipped": s.clipped_dims, "estop": s.estop, "fallback": s.fallback,
            "active": s.active, "reason": s.reason, "reasons": list(s.reasons), "cost": s.cost})
    return out


def lifecycle_probe(node: Node, joints: list[str], q0: list[float], node_name: str = "safety_shield",
                    seconds: float = 1.0) -> Any:
    """Drive the shield through configure → activate → deactivate with valid joint_states and
    actions flowing at 50 Hz; the statuses of each lifecycle state and the diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    rec = Recorder(node)
    diagnostics: list[dict[str, Any]] = []
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diagnostics.extend(
        {"name": s.name, "level": int.from_bytes(s.level, "little") if isinstance(s.level, bytes) else int(s.level),
         "message": s.message, "values": {kv.key: kv.value for kv in s.values}} for s in m.status), qos.STATUS)
    state_pub = node.create_publisher(JointState, "joint_states", qos.SENSOR)
    action_pub = node.create_publisher(Action, "raw_action", qos.COMMAND)
    change = node.create_client(ChangeState, f"{node_name}/change_state")
    wait_service(node, change)
    seq = 0

    def flow(duration: float) -> list[dict[str, Any]]:
        nonlocal seq
        first = len(rec.statuses)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            seq += 1
            state_pub.publish(_joint_state(joints, rec.joint_commands[-1] if rec.joint_commands else q0))
            action_pub.publish(Action(sequence=seq, action=to_f32_array([0.2] * len(joints))))
            rclpy.spin_once(node, timeout_sec=0.02)
        return rec.statuses[first:]

    out: dict[str, Any] = {"unconfigured": flow(seconds)}
    for label, transition in (("inactive", Transition.TRANSITION_CONFIGURE),
                              ("active", Transition.TRANSITION_ACTIVATE),
                              ("deactivated", Transition.TRANSITION_DEACTIVATE)):
        answer = call(node, change, ChangeState.Request(transition=Transition(id=transition)))
        out[label] = flow(seconds)
        out[label + "_transition"] = bool(answer.success)
    flow(1.0)
    out["diagnostics"] = diagnostics
    return out


# -- fuzzing ------------------------------------------------------------------------------------
_SPECIALS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 3.0e38, 1e-320, 0.0]


def _bad_floats(rng: np.random.Generator, n: int) -> list[float]:
    """``n`` floats that are mostly fine, with specials and huge values sprinkled in."""
    values = rng.uniform(-3.5, 3.5, n)
    for i in range(n):
        if rng.random() < 0.4:
            values[i] = _SPECIALS[rng.integers(len(_SPECIALS))]
    return values.tolist()


def _f32(values: list[float]) -> list[float]:
    """float32 fields: rclpy refuses values beyond float32's range, so huge ones become inf
    (what a float32 on the wire can hold), NaN stays NaN."""
    return [v if not math.isfinite(v) or abs(v) <= 3.4e38 else math.copysign(math.inf, v) for v in values]


def _malformed_joint_state(rng: np.random.Generator, joints: list[str]) -> JointState:
    """A JointState that is wrong in at least one way: missing, duplicate or unknown joints,
    mismatched lengths, NaN / inf, or finite values far beyond any limit."""
    n = len(joints)
    names = list(joints)
    if rng.random() < 0.5:
        rng.shuffle(names)                                   # another order alone is valid
    if rng.random() < 0.3:
        names.append("gripper_finger")                       # an extra joint alone is valid
    positions = rng.uniform(-3.0, 3.0, len(names))
    velocities: Any = rng.uniform(-1.0, 1.0, len(names))
    efforts: Any = []
    flaw = int(rng.integers(7))
    if flaw == 0:
        names = names[: int(rng.integers(n))]                # missing joints
        positions = positions[: len(names)]
        velocities = velocities[: len(names)]
    elif flaw == 1:
        names[int(rng.integers(1, len(names)))] = names[0]   # a duplicate, another joint missing
    elif flaw == 2:
        positions = rng.uniform(-3.0, 3.0, len(names) + int(rng.choice([-2, -1, 1, 5])))
    elif flaw == 3:
        velocities = rng.uniform(-1.0, 1.0, max(0, len(names) - 1))
    elif flaw == 4:
        efforts = rng.uniform(-1.0, 1.0, len(names) + 2)
    elif flaw == 5:
        target = positions if rng.random() < 0.6 else velocities
        for i in rng.choice(len(target), size=int(rng.integers(1, len(target) + 1)), replace=False):
            target[i] = _SPECIALS[int(rng.integers(5))]      # NaN, ±inf, ±1e308
    else:
        names, positions, velocities = [], np.zeros(0), []   # empty
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
    msg.name = list(names)
    msg.position = [float(x) for x in positions]
    msg.velocity = [float(x) for x in velocities]
    msg.effort = [float(x) for x in efforts]
    return msg


def _malformed_action(rng: np.random.Generator, n: int, sequence: int) -> Action:
    """An Action of the wrong size, or holding NaN / inf (float32: 1e308 arrives as inf)."""
    if rng.random() < 0.5:
        values = rng.uniform(-1.0, 1.0, int(rng.choice([0, 1, n - 1, n + 1, 64])))
    else:
        values = rng.uniform(-2.0, 2.0, n)
        for i in rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False):
            values[i] = _SPECIALS[int(rng.integers(5))]
    return Action(sequence=sequence, action=to_f32_array(_f32(values.tolist())))


def _malformed_imu(rng: np.random.Generator) -> Imu:
    """An Imu whose orientation is NaN / inf / huge or far from a unit quaternion."""
    values = rng.uniform(-1.0, 1.0, 4)
    if rng.random() < 0.5:
        values[int(rng.integers(4))] = _SPECIALS[int(rng.integers(5))]
    else:
        values *= float(rng.choice([0.0, 3.0, 1e6]))
    msg = Imu()
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (float(v) for v in values)
    return msg


def _malformed_joint_target(rng: np.random.Generator, n: int) -> Float64MultiArray:
    """Joint positions of the wrong size, or holding NaN / inf / ±1e308 (float64 carries them)."""
    if rng.random() < 0.5:
        values = rng.uniform(-3.0, 3.0, int(rng.choice([0, 1, n - 1, n + 1, 64])))
    else:
        values = rng.uniform(-3.0, 3.0, n)
        for i in rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False):
            values[i] = _SPECIALS[int(rng.integers(5))]
    return Float64MultiArray(data=[float(v) for v in values])


def fuzz_shield(node: Node, joints: list[str], q0: list[float], messages: int, block: int = 60,
                valid_seconds: float = 0.08, raw_positions: bool = False, seed: int = 0) -> Any:
    """Publish ``messages`` malformed JointState, Action and Imu messages (and joint_target
    Float64MultiArray with ``raw_positions``) in blocks of ``block``, each block followed by
    ``valid_seconds`` of valid input (joint_states following the shield's joint commands, actions
    pushing one way per block, an upright Imu), so the shield alternates between rejecting
    garbage and commanding; return every status it published. Valid actions are normalized in
    [-1, 1], or with ``raw_positions`` joint position targets 0.3 rad away, alternately on
    raw_action and joint_target."""
    rec = Recorder(node)
    state_pub = node.create_publisher(JointState, "joint_states", qos.SENSOR)
    action_pub = node.create_publisher(Action, "raw_action", qos.COMMAND)
    imu_pub = node.create_publisher(Imu, "imu", qos.SENSOR)
    target_pub = node.create_publisher(Float64MultiArray, "joint_target", qos.COMMAND)
    publishers = [state_pub, action_pub, imu_pub] + ([target_pub] if raw_positions else [])
    deadline = time.monotonic() + 60
    while min(p.get_subscription_count() for p in publishers) == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            raise TimeoutError("the shield's subscriptions did not appear")
    rng = np.random.default_rng(seed)
    n = len(joints)
    sent = {"joint_states": 0, "actions": 0, "imu": 0, "joint_targets": 0, "valid_rounds": 0}
    upright = Imu()
    upright.orientation.w = 1.0

    def valid_input(seconds: float, direction: np.ndarray, track: bool = True) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            last = rec.joint_commands[-1] if rec.joint_commands and track else None
            q = np.asarray(last if last and None not in last else q0)
            imu_pub.publish(upright)
            state_pub.publish(_joint_state(joints, q))
            action = np.clip(direction + rng.normal(0.0, 0.3, n), -1.0, 1.0)
            if not raw_positions:
                action_pub.publish(Action(sequence=sent["valid_rounds"], action=to_f32_array(action)))
            elif sent["valid_rounds"] % 2:
                action_pub.publish(Action(sequence=sent["valid_rounds"], action=to_f32_array(q + 0.3 * action)))
            else:
                target_pub.publish(Float64MultiArray(data=(q + 0.3 * action).tolist()))
            sent["valid_rounds"] += 1
            rclpy.spin_once(node, timeout_sec=0.01)

    valid_input(1.0, np.zeros(n))
    published = 0
    while published < messages:
        for _ in range(block):
            kind = int(rng.integers(4 if raw_positions else 3))
            if kind == 3:
                target_pub.publish(_malformed_joint_target(rng, n))
                sent["joint_targets"] += 1
            elif kind == 0:
                state_pub.publish(_malformed_joint_state(rng, joints))
                sent["joint_states"] += 1
            elif kind == 1:
                action_pub.publish(_malformed_action(rng, n, 1_000_000 + published))
                sent["actions"] += 1
            else:
                imu_pub.publish(_malformed_imu(rng))
                sent["imu"] += 1
            published += 1
            # Paced so that the shield's best-effort joint_states / imu queues are not simply
            # overwritten: each malformed message should reach its callback.
            rclpy.spin_once(node, timeout_sec=0.0005)
        valid_input(valid_seconds, rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n))
    first_after = len(rec.statuses)
    # Valid input at the end, the robot back at q0 (a robot held outside its workspace box stays
    # a fault): the shield must command normally again.
    valid_input(1.0, np.zeros(n), track=False)
    return {"sent": sent, "statuses": rec.statuses,
            "recovered": any(not s["fallback"] for s in rec.statuses[first_after:])}


def fuzz_services(node: Node, requests: int, obs_dim: int, action_dim: int, bridge: str = "", seed: int = 0) -> Any:
    """Malformed GetAction requests to policy_server and StepEnv / ResetEnv requests to a
    gym_bridge (when ``bridge`` is given); the answers' success flags, then a good request."""
    rng = np.random.default_rng(seed)
    act = node.create_client(GetAction, "get_action")
    wait_service(node, act)
    answers = {"get_action": [0, 0]}
    for _ in range(requests):
        m = int(rng.choice([0, 1, obs_dim - 1, obs_dim, obs_dim, obs_dim + 1, 1000]))
        request = GetAction.Request(observation=to_f32_array(_f32(_bad_floats(rng, m))),
                                    deterministic=bool(rng.integers(2)))
        response = call(node, act, request)
        answers["get_action"][int(response.success)] += 1
        if response.success and not np.all(np.isfinite(from_array(response.action))):
            raise AssertionError(f"get_action answered a non-finite action: {list(response.action)}")
    # Malformed observations on the topic and garbage weights: dropped with a log line.
    obs_pub = node.create_publisher(Observation, "observation", qos.OBSERVATION)
    weights_pub = node.create_publisher(PolicyWeights, "policy_weights", qos.LATCHED)
    for i in range(requests):
        m = int(rng.choice([0, 1, obs_dim - 1, obs_dim, obs_dim + 1, 1000]))
        obs_pub.publish(Observation(sequence=i, observation=to_f32_array(_f32(_bad_floats(rng, m)))))
        if i % 50 == 0:
            blob = rng.bytes(int(rng.integers(0, 256)))
            metadata = str(rng.choice(["{}", "[]", "not json", '{"version": 1}', '{"observation_spec": 3}']))
            sha = hashlib.sha256(blob).hexdigest() if rng.random() < 0.7 else "0" * 64
            msg = PolicyWeights(version=100 + i, metadata_json=metadata, sha256=sha)
            msg.safetensors = blob
            weights_pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.0005)
    answers["observations"] = requests
    good = call(node, act, GetAction.Request(observation=to_f32_array(np.zeros(obs_dim)), deterministic=True))
    result: dict[str, Any] = {"answers": answers, "good_get_action": bool(good.success)}
    if bridge:
        step = node.create_client(StepEnv, bridge + "step_env")
        reset = node.create_client(ResetEnv, bridge + "reset_env")
        wait_service(node, step)
        wait_service(node, reset)
        answers["step_env"], answers["reset_env"] = [0, 0], [0, 0]
        for i in range(requests // 4):
            if i % 20 == 0:
                seeded = bool(rng.integers(2))
                seed = int(rng.integers(-2**63, 2**63 - 1))  # negative seeds are refused, not fatal
                r = call(node, reset, ResetEnv.Request(seeded=seeded, seed=seed))
                assert r.success == (not seeded or seed >= 0), r.message
                answers["reset_env"][int(r.success)] += 1
            m = int(rng.choice([0, 1, action_dim - 1, action_dim, action_dim, action_dim + 1, 100]))
            s = call(node, step, StepEnv.Request(action=to_f32_array(_f32(_bad_floats(rng, m)))))
            answers["step_env"][int(s.success)] += 1
        call(node, reset, ResetEnv.Request(seeded=True, seed=0))
        good_step = call(node, step, StepEnv.Request(action=to_f32_array(np.zeros(action_dim))))
        result["good_step_env"] = bool(good_step.success) and bool(np.all(np.isfinite(from_array(good_step.observation))))
    return result


if __name__ == "__main__":
    run_command(globals())
