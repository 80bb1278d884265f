"""safety_shield over real rclpy: action mode (the simulation lock-step chain) and the lifecycle,
status and diagnostics of joint mode."""

import math

from shield_setup import JOINTS, Q0, run_client, shield_params


def test_action_mode_bounds_rejects_non_finite_and_wrong_sizes_and_obeys_estop_and_reset(ros):
    ros.node("safety_shield", {"action_low": [-1.0, -1.0, -0.5], "action_high": [1.0, 1.0, 0.5]})
    actions = [[0.1, -0.2, 0.3], [2.0, -3.0, 0.4], [math.nan, 0.0, 0.0], [math.inf, 0.0, 0.0], [0.1, 0.2],
               [0.5, 0.5, 0.5]]
    out = run_client(ros, "action_probe", actions=actions, estop_after=5)
    assert all(o is not None for o in out), out
    ok, clipped, nan, inf, short, stopped, reset, again = out
    assert ok["command"] == [0.10000000149011612, -0.20000000298023224, 0.30000001192092896]
    assert not ok["intervened"] and not ok["fallback"] and ok["version"] == 3 and ok["log_prob"] == -1.0
    assert ok["active"] and ok["reason"] == "ok" and ok["cost"] == 0.0
    assert clipped["command"] == [1.0, -1.0, 0.4000000059604645] and clipped["clipped"] == 2
    assert clipped["reasons"] == ["velocity_limit"] and clipped["log_prob"] is None and clipped["cost"] > 1.0
    for rejected, reason in ((nan, "non_finite_action"), (inf, "non_finite_action"), (short, "invalid_action")):
        assert rejected["command"] == [0.0, 0.0, 0.0] and rejected["fallback"] and rejected["reasons"] == [reason]
    assert nan["non_finite"] and inf["non_finite"] and "shape (2,)" in short["reason"]
    assert stopped["estop"] and stopped["command"] == [0.0, 0.0, 0.0] and "e-stop" in stopped["reason"]
    assert reset["reset"], reset
    assert again["command"] == ok["command"] and not again["estop"] and not again["fallback"]
    ros.alive()


def test_joint_mode_lifecycle_inactive_outputs_the_fallback_and_diagnostics_report(ros):
    ros.node("safety_shield", {**shield_params(), "autostart": False})
    # 2 s a phase: about 40 steps at 20 Hz, so 10 are left even when a loaded machine starves the node.
    out = run_client(ros, "lifecycle_probe", joints=JOINTS, q0=Q0, seconds=2.0)
    assert out["unconfigured"] == [], "an unconfigured shield published"
    assert out["inactive_transition"] and out["active_transition"] and out["deactivated_transition"]
    inactive, active, deactivated = out["inactive"], out["active"], out["deactivated"]
    assert len(inactive) >= 10 and len(active) >= 10 and len(deactivated) >= 10
    # Statuses are sliced by when the client received them: the first deactivated ones can still
    # be active ones published before the transition. Then, one step settling onto the hold (the
    # measured position may lag the last command by the robot's message delay).
    stopped = [s for s in deactivated if not s["active"]]
    assert deactivated[len(deactivated) - len(stopped):] == stopped, deactivated
    for label, statuses in (("inactive", inactive), ("deactivated", stopped[1:])):
        assert all(s["fallback"] and not s["active"] and "inactive" in s["reasons"] for s in statuses), statuses[:2]
        # The position fallback holds the measured position, so until the first joint_states
        # reaches the just-configured shield there is nothing to hold: no command at all, never
        # an invented one. From the first state on, the commands hold one position.
        waiting = [s for s in statuses if s["observation_age"] is None]
        held = statuses[len(waiting):]
        assert statuses[:len(waiting)] == waiting and all(s["command"] == [] for s in waiting), (label, statuses)
        assert len(held) >= len(statuses) // 2, (label, statuses)
        assert all(s["command"] == held[0]["command"] for s in held), \
            (label, [(s["step"], s["observation_age"], s["command"]) for s in statuses])
    # Inactive: the position the robot is at (q0), not q0 moved by the delta actions that flow.
    assert inactive[-1]["command"] == Q0, inactive[-1]
    assert not any(s["observation_age"] is None for s in deactivated), deactivated[:2]
    nominal = [s for s in active if not s["fallback"]]
    assert len(nominal) >= len(active) - 2 and all(s["active"] for s in nominal)
    assert nominal[-1]["command"] != nominal[0]["command"], "active: the commands should follow the actions"
    shield = [d for d in out["diagnostics"] if d["name"].endswith("safety shield")]
    assert shield, out["diagnostics"]
    keys = {"active", "estop_latched", "intervention_rate", "fallback_rate", "step_latency_mean_ms",
            "action_to_command_latency_mean_ms", "steps"}
    assert all(keys <= set(d["values"]) for d in shield)
    assert any(d["values"]["active"] == "true" and float(d["values"]["fallback_rate"]) < 0.2 for d in shield)
    assert any(d["values"]["active"] == "false" and d["level"] == 1 for d in shield)  # WARN while inactive
    ros.alive()
