"""Fault tests of the safety shield with real rclpy processes: policy_server killed, joint_states
stopped, e-stop, reset while unsafe. Each outcome is asserted and timed against the configured
timeout.

The chain: a mock robot (a client process: observations for policy_server, joint_states that
follow the shield's joint commands) → policy_server (a 7-dimensional joint-delta policy) →
safety_shield (the Kuka iiwa, joint mode, 20 Hz, 0.3 s timeouts) → back to the mock robot.

Timing is read from what the shield itself publishes: each ShieldStatus is stamped when its step
ran and carries the age of the last action and state it had received. The watchdog property is
exact on those: the step before the fallback still had a fresh input (age ≤ timeout) and the
fallback step had a stale one (age > timeout), so the fallback came at the first tick after the
timeout. The wall time between those two steps is one control period plus the timer's lateness,
which TICK_TOLERANCE bounds on a loaded machine; end to end (from the stamp of the last action's
observation, or the last joint_states sent) TRANSPORT_TOLERANCE adds the message latency.
"""

import os
import signal
import time

import numpy as np
from shield_setup import (
    JOINTS,
    OBS_DIM,
    PERIOD,
    Q0,
    TIMEOUT,
    finish_client,
    first_index,
    save_policy,
    shield_params,
    start_client,
    urdf_position_limits,
)

TICK_TOLERANCE = 0.06
"""Seconds a 20 Hz steady-clock timer may fire late on a loaded 2-core machine."""
TRANSPORT_TOLERANCE = 0.1
"""Seconds from an observation's stamp to the shield receiving the action that answers it
(policy_server's inference and two message hops), on a loaded machine."""


def _start_chain(ros, tmp_path):
    shield = ros.node("safety_shield", shield_params())
    server = ros.node("policy_server", {"policy_file": str(save_policy(tmp_path / "policy")), "deterministic": True,
                                        "hot_swap": False})
    return shield, server


def _wait_ready(ros, client, ready, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not ready.exists():
        assert client.poll() is None, finish_client(ros, client)
        assert time.monotonic() < deadline, "the shield never passed a command\n" + ros.logs()
        time.sleep(0.05)


def _assert_within_limits(statuses):
    lower, upper = urdf_position_limits()
    for s in statuses:
        if s["command"]:
            command = np.array(s["command"], dtype=float)
            assert np.all(np.isfinite(command)) and np.all(command >= lower) and np.all(command <= upper), s


def _first_stale_step(statuses, start, age_key, reason):
    """The first fallback step from ``start`` on, checked to be the first tick after the timeout."""
    i = first_index(statuses, lambda s: s["fallback"], start)
    assert i > start, f"no fallback after the fault, or no step before it: {statuses[start:start + 3]}"
    first, before = statuses[i], statuses[i - 1]
    assert reason in first["reasons"], first
    assert not before["fallback"] and before[age_key] <= TIMEOUT, before
    assert first[age_key] > TIMEOUT, first
    assert first["stamp"] - before["stamp"] <= PERIOD + TICK_TOLERANCE, (before, first)
    return i


def test_killed_policy_server_gives_the_fallback_within_the_action_timeout_plus_one_tick(ros, tmp_path):
    shield, server = _start_chain(ros, tmp_path)
    ready = tmp_path / "ready"
    client = start_client(ros, "mock_robot", joints=JOINTS, q0=Q0, obs_dim=OBS_DIM, ready_file=str(ready),
                          phases=[{"seconds": 3.0}])
    _wait_ready(ros, client, ready)
    time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    killed = time.time()
    result = finish_client(ros, client)
    assert server.wait(timeout=10) == -signal.SIGKILL and shield.poll() is None, ros.logs()

    statuses = result["statuses"]
    last_action = max(a["stamp"] for a in result["raw_actions"])
    assert last_action <= killed
    start = first_index(statuses, lambda s: s["stamp"] > float(ready.read_text()))
    i = _first_stale_step(statuses, start, "action_age", "action_timeout")
    assert all(not s["fallback"] for s in statuses[start:i]), "fallback before the policy died"
    first = statuses[i]
    since_action = first["stamp"] - last_action
    assert TIMEOUT < since_action <= TIMEOUT + PERIOD + TICK_TOLERANCE + TRANSPORT_TOLERANCE, since_action
    # Never the last action forever: every later step is the fallback, holding one position.
    after = statuses[i:]
    assert len(after) >= 20 and all(s["fallback"] and "action_timeout" in s["reasons"] for s in after)
    assert all(s["command"] == first["command"] for s in after), "the fallback does not hold still"
    _assert_within_limits(statuses)
    print(f"policy_server killed: fallback {first['action_age']:.3f} s after the last action reached the shield "
          f"({since_action:.3f} s after its observation's stamp, {first['stamp'] - killed:.3f} s after the kill); "
          f"action timeout {TIMEOUT} s, control period {PERIOD} s")


def test_stopped_joint_states_give_the_fallback_within_the_observation_timeout_plus_one_tick(ros, tmp_path):
    shield, _ = _start_chain(ros, tmp_path)
    result = finish_client(ros, start_client(ros, "mock_robot", joints=JOINTS, q0=Q0, obs_dim=OBS_DIM,
                                             phases=[{"seconds": 0.5}, {"seconds": 1.5, "states": "stop"},
                                                     {"seconds": 1.0}]))
    assert shield.poll() is None, ros.logs()
    statuses, (before, stopped, resumed) = result["statuses"], result["phases"]
    last_state = before["last_state"]
    start = first_index(statuses, lambda s: s["stamp"] > before["start"])
    i = _first_stale_step(statuses, start, "observation_age", "observation_timeout")
    first = statuses[i]
    since_state = first["stamp"] - last_state
    assert TIMEOUT < since_state <= TIMEOUT + PERIOD + TICK_TOLERANCE + TRANSPORT_TOLERANCE, since_state
    during = [s for s in statuses[i:] if s["stamp"] <= stopped["end"]]
    assert len(during) >= 15 and all(s["fallback"] for s in during)
    assert all(s["command"] == first["command"] for s in during), "the fallback does not hold still"
    # The watchdog is not latching here: fresh states bring the commands back without a reset.
    back = [s for s in statuses if s["stamp"] > resumed["start"] + TIMEOUT]
    assert back and not back[-1]["fallback"] and not back[-1]["estop"], back[-3:]
    _assert_within_limits(statuses)
    print(f"joint_states stopped: fallback {first['observation_age']:.3f} s after the last state reached the "
          f"shield ({since_state:.3f} s after it was sent); observation timeout {TIMEOUT} s, period {PERIOD} s")


def test_estop_latches_and_reset_is_refused_while_unsafe(ros, tmp_path):
    shield, _ = _start_chain(ros, tmp_path)
    beyond = list(Q0)
    beyond[6] = 3.2  # joint 7 beyond its 3.054 rad limit (and the 0.05 rad tolerance); the flange stays put
    phases = [
        {"seconds": 0.5},
        {"seconds": 1.0, "call": "estop"},
        {"seconds": 2 * TIMEOUT, "states": "stop"},
        {"seconds": 0.3, "states": "stop", "call": "reset"},   # refused: no fresh state to verify
        {"seconds": 0.5},
        {"seconds": 1.0, "call": "reset"},                     # accepted: the cause is gone
        {"seconds": 0.5, "states": beyond},                    # latches state_out_of_limits
        {"seconds": 0.3, "states": beyond, "call": "reset"},   # refused: the cause persists
        {"seconds": 0.5, "states": Q0},
        {"seconds": 1.0, "call": "reset"},                     # accepted
    ]
    result = finish_client(ros, start_client(ros, "mock_robot", joints=JOINTS, q0=Q0, obs_dim=OBS_DIM,
                                             phases=phases))
    assert shield.poll() is None, ros.logs()
    statuses, log = result["statuses"], result["phases"]

    def during(k, settle=0.0):
        return [s for s in statuses if log[k]["start"] + settle < s["stamp"] <= log[k]["end"]]

    assert during(0) and not any(s["fallback"] for s in during(0))
    # E-stop: latched from the first step after the service answered; every command the fallback.
    assert log[1]["success"]
    latched = [s for s in statuses if log[1]["answered"] <= s["stamp"] <= log[5]["start"]]
    assert len(latched) >= 30 and all(s["fallback"] and s["estop"] and s["latched"] == ["estop_request"]
                                      for s in latched)
    first = first_index(statuses, lambda s: s["estop"])
    assert statuses[first]["stamp"] - log[1]["start"] <= PERIOD + TICK_TOLERANCE + TRANSPORT_TOLERANCE
    held = [s["command"] for s in during(1)]
    assert held and all(c == held[0] for c in held), "the e-stop fallback does not hold still"
    # Reset with no fresh state: refused, the e-stop stays.
    assert not log[3]["success"] and "observation_timeout" in log[3]["message"], log[3]
    assert all(s["estop"] for s in during(3) + during(4))
    # Reset once a fresh state shows nothing wrong: accepted, commands flow again.
    assert log[5]["success"], log[5]
    assert any(not s["fallback"] for s in during(5, settle=PERIOD + TICK_TOLERANCE))
    assert not any(s["estop"] for s in during(5, settle=PERIOD + TICK_TOLERANCE))
    # A state beyond the limits latches (latch_on), and a reset is refused while it persists.
    out = during(6, settle=TIMEOUT)
    assert out and all(s["fallback"] and "state_out_of_limits" in s["latched"] for s in out), out[:2]
    assert not log[7]["success"] and "state_out_of_limits" in log[7]["message"], log[7]
    assert all(s["estop"] for s in during(8))
    assert log[9]["success"], log[9]
    assert any(not s["fallback"] for s in during(9, settle=PERIOD + TICK_TOLERANCE))
    _assert_within_limits(statuses)
