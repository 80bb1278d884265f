"""Fuzzing the nodes over real rclpy: thousands of malformed messages and service requests never
crash a node, and no command the shield publishes meanwhile leaves the robot's limits.

Two client processes run at once: one floods the shield (joint mode, Kuka iiwa, with roll /
pitch bounds so that it reads an Imu too) with malformed JointState, Action and Imu messages,
in blocks separated by short spells of valid input that make it command; the other sends
malformed GetAction requests, Observation messages and policy weights to policy_server, and
StepEnv / ResetEnv requests to a gym_bridge. The commands are checked against the limits the
test configured (URDF position limits read here, velocity 1.5 rad/s, acceleration 10 rad/s²,
the workspace box through PyBullet's forward kinematics), not against the shield's internals.
"""

import math

import numpy as np
from shield_setup import (
    ACCELERATION,
    BOX_HIGH,
    BOX_LOW,
    JOINTS,
    OBS_DIM,
    Q0,
    VELOCITY,
    finish_client,
    flange_positions,
    save_policy,
    shield_params,
    start_client,
    urdf_position_limits,
)

FUZZ_PERIOD = 0.02
SHIELD_MESSAGES = 4000
SERVICE_REQUESTS = 1000
# Float rounding of the checks below (the shield's own slack is relative 1e-9).
EPS = 1e-7


def _box_distance(points: np.ndarray) -> np.ndarray:
    gap = np.maximum(np.asarray(BOX_LOW) - points, 0.0) + np.maximum(points - np.asarray(BOX_HIGH), 0.0)
    return np.linalg.norm(gap, axis=1)


def _check_commands(statuses):
    """Every command within the position limits; every step that passes (not the fallback)
    also within velocity, acceleration and braking distance of the step before it, and no
    farther outside the workspace box than the step before it (inside stays inside)."""
    lower, upper = urdf_position_limits()
    dt = FUZZ_PERIOD
    by_step = {s["step"]: s for s in statuses if s["command"]}
    steps = sorted(by_step)
    commands = np.array([by_step[k]["command"] for k in steps], dtype=float)
    assert np.all(np.isfinite(commands)), "a non-finite command"
    assert np.all(commands >= lower - EPS) and np.all(commands <= upper + EPS), "a command beyond a position limit"
    distance = dict(zip(steps, _box_distance(flange_positions(commands))))
    checked = 0
    velocity: dict[int, np.ndarray] = {}
    for k in steps:
        s = by_step[k]
        if s["fallback"]:
            velocity[k] = np.zeros(len(JOINTS))  # the next command starts from the fallback at rest
            continue
        previous = by_step.get(k - 1)
        if previous is None:
            continue
        v = (np.array(s["command"]) - np.array(previous["command"])) / dt
        assert np.all(np.abs(v) <= VELOCITY * (1 + EPS)), (k, v)
        # rate_limit_infeasible: the shield reports that no command met both the hard limits and
        # the rate limits (here: holding to keep the flange in its box); the hard limits won.
        if k - 1 in velocity and "rate_limit_infeasible" not in s["reasons"]:
            assert np.all(np.abs(v - velocity[k - 1]) <= ACCELERATION * dt * (1 + EPS) + EPS), (
                k, v, velocity[k - 1], [(by_step.get(j, {}).get("fallback"), by_step.get(j, {}).get("reason", "")[:200],
                                         by_step.get(j, {}).get("command")) for j in (k - 2, k - 1, k)])
        stop = np.array(s["command"]) + v * np.abs(v) / (2 * ACCELERATION)
        assert np.all(stop >= lower - EPS) and np.all(stop <= upper + EPS), (k, "stops beyond a limit")
        assert distance[k] <= distance[k - 1] + 1e-6, (k, "farther outside the workspace", distance[k - 1],
                                                       distance[k])
        velocity[k] = v
        checked += 1
    return checked


def _fuzz_shield_params(**extra):
    return shield_params(**{
        "control_period": FUZZ_PERIOD, "orientation.max_roll": 0.5, "orientation.max_pitch": 0.5,
        # Nothing latches: the shield keeps alternating between rejecting and commanding.
        "latch_on": [], "watchdog.observation_timeout": 0.1, "watchdog.action_timeout": 0.1, **extra})


def _check_shield_run(shielded, messages):
    sent = shielded["sent"]
    assert sent["joint_states"] + sent["actions"] + sent["imu"] + sent["joint_targets"] >= messages
    statuses = shielded["statuses"]
    reasons = {r for s in statuses for r in s["reasons"]}
    # The garbage reached the core and was rejected as such, and valid spells still commanded.
    assert {"invalid_state", "non_finite_state", "invalid_action", "non_finite_action"} <= reasons, reasons
    assert sum(not s["fallback"] for s in statuses) >= 50, "too few commanded steps to check"
    checked = _check_commands(statuses)
    assert checked >= 30, checked
    assert all(math.isfinite(s["cost"]) for s in statuses)
    assert shielded["recovered"], ("the shield did not command again on valid input after the fuzzing",
                                   [(s["reasons"], s["reason"][:300]) for s in statuses[-3:]])
    return sent, len(statuses), checked


def test_malformed_messages_and_requests_crash_no_node_and_never_move_the_robot_beyond_its_limits(ros, tmp_path):
    """Normalized policy actions (joint deltas) on raw_action; services of policy_server and
    gym_bridge fuzzed at the same time."""
    shield = ros.node("safety_shield", _fuzz_shield_params())
    server = ros.node("policy_server", {"policy_file": str(save_policy(tmp_path / "policy")), "deterministic": True})
    bridge = ros.node("gym_bridge", {"step_on_command": False, "publish_clock": False}, namespace="/sim")
    shield_fuzz = start_client(ros, "fuzz_shield", joints=JOINTS, q0=Q0, messages=SHIELD_MESSAGES)
    service_fuzz = start_client(ros, "fuzz_services", requests=SERVICE_REQUESTS, obs_dim=OBS_DIM, action_dim=3,
                                bridge="/sim/")
    shielded = finish_client(ros, shield_fuzz, timeout=180)
    served = finish_client(ros, service_fuzz, timeout=180)
    for name, proc in (("safety_shield", shield), ("policy_server", server), ("gym_bridge", bridge)):
        assert proc.poll() is None, f"{name} died\n" + ros.logs()
    sent, steps, checked = _check_shield_run(shielded, SHIELD_MESSAGES)

    answers = served["answers"]
    assert answers["get_action"][0] >= SERVICE_REQUESTS // 3, answers  # refused: malformed
    assert answers["get_action"][1] >= 1 and served["good_get_action"], answers
    assert sum(answers["step_env"]) == SERVICE_REQUESTS // 4 and answers["step_env"][0] >= 1, answers
    assert served["good_step_env"], "gym_bridge stopped stepping after the fuzzing"
    print(f"fuzz: {sent} to the shield, {steps} steps, {checked} commanded steps checked against the "
          f"limits; {answers}")


def test_malformed_joint_targets_never_move_the_robot_beyond_its_limits(ros):
    """Joint position targets (interface units) on raw_action and joint_target, where float64
    carries what float32 cannot (±1e308)."""
    shield = ros.node("safety_shield", _fuzz_shield_params(normalized_actions=False))
    shielded = finish_client(ros, start_client(ros, "fuzz_shield", joints=JOINTS, q0=Q0,
                                               messages=SHIELD_MESSAGES // 2, raw_positions=True), timeout=180)
    assert shield.poll() is None, "safety_shield died\n" + ros.logs()
    sent, steps, checked = _check_shield_run(shielded, SHIELD_MESSAGES // 2)
    assert sent["joint_targets"] >= SHIELD_MESSAGES // 10
    print(f"fuzz (joint targets): {sent} to the shield, {steps} steps, {checked} commanded steps checked")
