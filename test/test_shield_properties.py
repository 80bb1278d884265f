"""Property tests of the safety shield core (Hypothesis, thousands of cases per property).

Each case builds a shield with random limits and runs a random sequence of steps with random,
often adversarial, inputs: NaN, infinities, 1e308, wrong dimensions, states beyond the limits,
stale or missing messages. The test keeps its own model of the command stream (the previous
command and its velocity) and checks every output against the limits directly, never against
the shield's internals.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drl_ros.core.shield import (
    ActionScalingConfig,
    JointLimits,
    OrientationConfig,
    Reason,
    RobotState,
    SafetyShield,
    ShieldConfig,
    WatchdogConfig,
    WorkspaceConfig,
    box_distance,
    roll_pitch,
)

def EX(n: int) -> int:  # noqa: N802
    """Example count; DRL_ROS_SHIELD_EXAMPLES_SCALE scales it (e.g. 0.05 while iterating)."""
    return max(10, int(n * float(os.environ.get("DRL_ROS_SHIELD_EXAMPLES_SCALE", "1"))))


# Float rounding slack of the checks (positions in m or rad, velocities per second).
TOL = 1e-7

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.filter_too_much])

NASTY = [math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, -0.0, 5e-324]


@dataclass
class Case:
    limits: JointLimits
    dt: float
    interface: str
    normalized: bool
    mode: str
    steps: list[dict[str, Any]]
    damping: float
    timeout: float


# Strategies are built once: building them inside the composite costs more than the test.
_JOINT = st.tuples(
    st.floats(-5.0, 5.0),  # lower position limit
    st.one_of(st.just(0.0), st.floats(1e-3, 6.0)),  # width of the range (0: a locked joint)
    st.floats(0.01, 50.0),  # velocity
    st.floats(0.1, 1000.0),  # acceleration
    st.floats(0.1, 500.0),  # effort
    st.one_of(st.just(math.inf), st.floats(1.0, 1e4)),  # effort rate
)
_JOINTS = {n: st.lists(_JOINT, min_size=n, max_size=n) for n in range(1, 5)}
_STATE_KINDS = st.sampled_from(["track"] * 5 + ["random"] * 3 + ["adversarial", "wrong_dim", "none", "garbage"])
_ACTION_KINDS = st.sampled_from(["random"] * 5 + ["adversarial"] * 2 + ["wrong_dim", "none", "garbage"])
_WAITS = st.sampled_from([1.0] * 8 + [0.0, 3.0, 40.0])
_SEEDS = st.integers(0, 2**32 - 1)


def _limits(draw: st.DrawFn, n: int, zero_width: bool = True) -> JointLimits:
    lower, width, velocity, acceleration, effort, effort_rate = (np.array(c) for c in zip(*draw(_JOINTS[n])))
    if not zero_width:
        width = np.maximum(width, 1e-3)
    return JointLimits.create([f"j{i}" for i in range(n)], position_lower=lower, position_upper=lower + width,
                              velocity=velocity, acceleration=acceleration, effort=effort, effort_rate=effort_rate)


def _adversarial(rng: np.random.Generator, size: int) -> np.ndarray:
    """NaN, infinities, extremes, subnormals, huge and tiny magnitudes, ordinary values."""
    pick = rng.integers(0, 3, size)
    nasty = np.array(NASTY)[rng.integers(0, len(NASTY), size)]
    with np.errstate(over="ignore"):
        wide = rng.choice([-1.0, 1.0], size) * 10.0 ** rng.uniform(-320.0, 308.3, size)
    return np.where(pick == 0, nasty, np.where(pick == 1, wide, rng.uniform(-20.0, 20.0, size)))


def _vector(rng: np.random.Generator, n: int, kind: str, scale: float = 1.0) -> Any:
    if kind == "wrong_dim":
        return list(rng.uniform(-1.0, 1.0, int(rng.choice([k for k in range(n + 3) if k != n]))))
    if kind == "garbage":
        return [["left"], None, [[1.0] * n], {"a": 1}, [object()] * n][int(rng.integers(0, 5))]
    if kind == "adversarial":
        return list(_adversarial(rng, n))
    return list(scale * rng.uniform(-1.5, 1.5, n))


@st.composite
def cases(draw: st.DrawFn, interface: str | None = None, max_steps: int = 8) -> Case:
    n = draw(st.integers(1, 4))
    normalized = draw(st.booleans())
    # A locked joint (zero range) cannot be scaled from [-1, 1]: the shield refuses that config.
    limits = _limits(draw, n, zero_width=not normalized)
    interface = interface or draw(st.sampled_from(["position", "velocity", "effort"]))
    mode = draw(st.sampled_from(["absolute", "delta"])) if normalized else "absolute"
    if normalized and interface == "effort" and mode == "delta" and not np.all(np.isfinite(limits.effort_rate)):
        mode = "absolute"  # delta effort actions scale by the effort rate, which must be finite
    dt = draw(st.floats(1e-3, 0.1))
    # Hypothesis chooses the structure (limits, step kinds), which shrinks to readable failures;
    # a seeded generator fills in the values, which keeps thousands of cases within seconds.
    rng = np.random.default_rng(draw(_SEEDS))
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        state = draw(_STATE_KINDS)
        action = draw(_ACTION_KINDS)
        steps.append({
            "wait": draw(_WAITS),
            "state": state,
            "state_values": rng.uniform(-1.2, 1.2, 2 * n),
            "state_adv": _adversarial(rng, 2 * n),
            "action": action,
            "action_value": None if action == "none" else _vector(rng, n, action, 1.0 if normalized else 10.0),
        })
    return Case(limits, dt, interface, normalized, mode, steps, draw(st.floats(0.0, 50.0)), 10.0 * dt)


def _shield(case: Case, **overrides: Any) -> SafetyShield:
    config = ShieldConfig(interface=case.interface, normalized_actions=case.normalized,  # type: ignore[arg-type]
                          scaling=ActionScalingConfig(mode=case.mode),  # type: ignore[arg-type]
                          control_period=case.dt, damping=[case.damping],
                          watchdog=WatchdogConfig(case.timeout, case.timeout), **overrides)
    return SafetyShield(config, case.limits)


def _valid(positions: Any, velocities: Any, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The test's own validity rule: numeric, shape (n,), finite."""
    try:
        q = np.array(positions, dtype=np.float64)
        v = np.array(velocities, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if q.shape != (n,) or v.shape != (n,) or not (np.all(np.isfinite(q)) and np.all(np.isfinite(v))):
        return None
    return q, v


@dataclass
class Model:
    """The command stream as the test sees it: previous command, its velocity, the last inputs."""

    n: int
    ref_q: np.ndarray | None = None
    ref_v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ref_effort: np.ndarray = field(default_factory=lambda: np.zeros(0))
    good: tuple[np.ndarray, np.ndarray] | None = None
    state_time: float | None = None
    state_ok: bool = False
    state_nonfinite: bool = False
    action_time: float | None = None
    action_nonfinite: bool = False

    def __post_init__(self) -> None:
        self.ref_v = np.zeros(self.n)
        self.ref_effort = np.zeros(self.n)


def _fresh(stamp: float | None, now: float, timeout: float) -> bool:
    return stamp is not None and 0.0 <= now - stamp <= timeout


def _nonfinite_vector(value: Any, n: int) -> bool:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    return arr.shape == (n,) and not np.all(np.isfinite(arr))


def _shaped_but_non_finite(positions: Any, velocities: Any, n: int) -> bool:
    """Right shapes and types, but a NaN or infinity somewhere."""
    try:
        q = np.array(positions, dtype=np.float64)
        v = np.array(velocities, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    return q.shape == (n,) and v.shape == (n,) and not (np.all(np.isfinite(q)) and np.all(np.isfinite(v)))


def _state_for(step: dict[str, Any], case: Case, model: Model, last_command: np.ndarray | None) -> RobotState | None:
    lim, n = case.limits, case.limits.n
    kind = step["state"]
    if kind == "none":
        return None
    if kind == "garbage":
        return RobotState(positions="broken", velocities=[1.0] * n)
    if kind == "wrong_dim":
        return RobotState(positions=[0.0] * (n + 1), velocities=[0.0] * n)
    if kind == "adversarial":
        return RobotState(list(step["state_adv"][:n]), list(step["state_adv"][n:]))
    values = np.array(step["state_values"])
    lo = np.where(np.isfinite(lim.position_lower), lim.position_lower, -5.0)
    hi = np.where(np.isfinite(lim.position_upper), lim.position_upper, 5.0)
    random_q = lo + (values[:n] + 1.2) / 2.4 * (hi - lo + 0.2) - 0.1
    random_v = values[n:] * lim.velocity
    if kind == "track" and model.good is not None:
        q, v = model.good
        if case.interface == "position" and last_command is not None:
            with np.errstate(over="ignore"):  # q may be an adversarial 1e308 from an earlier step
                return RobotState(last_command.copy(), (last_command - q) / case.dt)
        if case.interface == "velocity" and last_command is not None:
            with np.errstate(over="ignore"):
                return RobotState(q + last_command * case.dt, last_command.copy())
    return RobotState(random_q, random_v)


def _check_output(case: Case, model: Model, out: Any, now: float) -> None:
    lim, n, dt = case.limits, case.limits.n, case.dt
    cmd = out.command
    assert out.interface == case.interface
    assert math.isfinite(out.cost) and out.cost >= len(out.reasons) - 1e-12
    if cmd is not None:
        assert cmd.shape == (n,) and np.all(np.isfinite(cmd)), cmd
    if out.applied_action is not None:
        assert np.all(np.abs(out.applied_action) <= 1.0)

    # Any non-finite input that is the latest and fresh yields the fallback, with its reason.
    if _fresh(model.action_time, now, case.timeout) and model.action_nonfinite:
        assert out.fallback and Reason.NON_FINITE_ACTION in out.reasons
    if _fresh(model.state_time, now, case.timeout) and model.state_nonfinite:
        assert out.fallback and Reason.NON_FINITE_STATE in out.reasons
    if not _fresh(model.state_time, now, case.timeout):
        assert out.fallback and Reason.OBSERVATION_TIMEOUT in out.reasons
    if not _fresh(model.action_time, now, case.timeout):
        assert out.fallback and Reason.ACTION_TIMEOUT in out.reasons

    if out.fallback:
        # The fallback is right for the interface, and never the last action.
        if case.interface == "position":
            if model.good is None:
                assert cmd is None
            else:
                np.testing.assert_array_equal(cmd, np.clip(model.good[0], lim.position_lower, lim.position_upper))
        elif case.interface == "velocity":
            np.testing.assert_array_equal(cmd, np.zeros(n))
        else:
            fresh_state = _fresh(model.state_time, now, case.timeout) and model.state_ok
            with np.errstate(over="ignore"):
                expected = np.clip(-case.damping * model.good[1], -lim.effort, lim.effort) \
                    if fresh_state and model.good is not None else np.zeros(n)
            np.testing.assert_array_equal(cmd, expected)
        model.ref_q = cmd.copy() if case.interface == "position" and cmd is not None else None
        model.ref_v = np.zeros(n)
        model.ref_effort = cmd.copy() if case.interface == "effort" else np.zeros(n)
        return

    assert model.good is not None and cmd is not None
    infeasible = Reason.RATE_LIMIT_INFEASIBLE in out.reasons
    if case.interface == "position":
        q_b = model.ref_q if model.ref_q is not None else np.clip(model.good[0], lim.position_lower,
                                                                  lim.position_upper)
        v_b = model.ref_v if model.ref_q is not None else np.zeros(n)
        v = (cmd - q_b) / dt
        assert np.all(cmd >= lim.position_lower) and np.all(cmd <= lim.position_upper)
        assert np.all(np.abs(v) <= lim.velocity * (1 + 1e-9) + TOL)
        # Without a workspace, the position command stream never needs to break a rate limit.
        assert not infeasible
        assert np.all(np.abs(v - v_b) <= lim.acceleration * dt * (1 + 1e-9) + TOL * (1 + np.abs(v))), (v, v_b)
        stop = cmd + v * np.abs(v) / (2 * lim.acceleration)
        assert np.all(stop <= lim.position_upper + TOL) and np.all(stop >= lim.position_lower - TOL)
        model.ref_q, model.ref_v = cmd.copy(), v
    elif case.interface == "velocity":
        q = model.good[0]
        v = cmd
        assert np.all(np.abs(v) <= lim.velocity * (1 + 1e-9))
        stop = q + v * dt + v * np.abs(v) / (2 * lim.acceleration)
        assert np.all((v <= 0) | (stop <= lim.position_upper + TOL)), "moves past (or farther past) the upper limit"
        assert np.all((v >= 0) | (stop >= lim.position_lower - TOL)), "moves past (or farther past) the lower limit"
        if not infeasible:
            assert np.all(np.abs(v - model.ref_v) <= lim.acceleration * dt * (1 + 1e-9) + TOL)
        model.ref_v = v.copy()
    else:
        q, qd = model.good
        tau = cmd
        assert np.all(np.abs(tau) <= lim.effort)
        assert np.all(~(((q >= lim.position_upper) & (qd >= 0)) | (qd > lim.velocity)) | (tau <= 0.0))
        assert np.all(~(((q <= lim.position_lower) & (qd <= 0)) | (qd < -lim.velocity)) | (tau >= 0.0))
        if not infeasible:
            assert np.all(np.abs(tau - model.ref_effort) <= lim.effort_rate * dt * (1 + 1e-9) + TOL)
        model.ref_effort = tau.copy()


def _run(case: Case, shield: SafetyShield) -> None:
    model = Model(case.limits.n)
    now = 100.0
    last_command: np.ndarray | None = None
    for step in case.steps:
        now += step["wait"] * case.dt
        state = _state_for(step, case, model, last_command)
        if state is not None:
            shield.observe(state, now)
            valid = _valid(state.positions, state.velocities, case.limits.n)
            model.state_time, model.state_ok = now, valid is not None
            model.state_nonfinite = _shaped_but_non_finite(state.positions, state.velocities, case.limits.n)
            if valid is not None:
                model.good = valid
        if step["action"] != "none":
            shield.propose(step["action_value"], now)
            model.action_time = now
            model.action_nonfinite = _nonfinite_vector(step["action_value"], case.limits.n)
        out = shield.step(now)
        _check_output(case, model, out, now)
        last_command = out.command if not out.fallback else (None if case.interface != "position" else out.command)


@settings(max_examples=EX(1000), **SETTINGS)
@given(cases(interface="position"))
def test_position_commands_never_violate_position_velocity_acceleration_or_braking(case: Case) -> None:
    _run(case, _shield(case, latch_on=[]))


@settings(max_examples=EX(1000), **SETTINGS)
@given(cases(interface="velocity"))
def test_velocity_commands_never_violate_speed_position_or_rate(case: Case) -> None:
    _run(case, _shield(case, latch_on=[]))


@settings(max_examples=EX(1000), **SETTINGS)
@given(cases(interface="effort"))
def test_effort_commands_never_violate_effort_direction_or_rate(case: Case) -> None:
    _run(case, _shield(case, latch_on=[]))


@settings(max_examples=EX(1000), **SETTINGS)
@given(cases(), st.lists(st.sampled_from(sorted(Reason.__members__.values(), key=lambda r: r.value)), max_size=4))
def test_latched_faults_keep_every_output_safe(case: Case, latch_on: list[Reason]) -> None:
    from drl_ros.core.shield import FAULT_REASONS

    _run(case, _shield(case, latch_on=[r for r in latch_on if r in FAULT_REASONS]))


@settings(max_examples=EX(1000), **SETTINGS)
@given(cases(max_steps=1), st.sampled_from(["action", "positions", "velocities", "orientation"]),
       st.sampled_from([math.nan, math.inf, -math.inf]), st.integers(0, 3))
def test_any_non_finite_input_yields_the_interface_fallback(case: Case, where: str, bad: float, index: int) -> None:
    n = case.limits.n
    shield = _shield(case, latch_on=[])
    lim = case.limits
    q = np.clip(np.zeros(n), lim.position_lower, lim.position_upper)
    v = np.full(n, 0.5) * lim.velocity
    orientation = np.array([0.0, 0.0, 0.0, 1.0])
    now = 7.0
    # A good state first, then the bad input: the position fallback holds the good state.
    shield.observe(RobotState(q, v, orientation=orientation), now - case.dt)
    action = np.zeros(n)
    if where == "action":
        action[index % n] = bad
    elif where == "positions":
        q = q.copy()
        q[index % n] = bad
    elif where == "velocities":
        v = v.copy()
        v[index % n] = bad
    else:
        orientation = orientation.copy()
        orientation[index] = bad
    shield.observe(RobotState(q, v, orientation=orientation), now)
    shield.propose(action, now)
    out = shield.step(now)
    assert out.fallback
    assert (Reason.NON_FINITE_ACTION if where == "action" else Reason.NON_FINITE_STATE) in out.reasons
    good_q = np.clip(np.zeros(n), lim.position_lower, lim.position_upper)
    if case.interface == "position":
        np.testing.assert_array_equal(out.command, good_q)
    elif case.interface == "velocity":
        np.testing.assert_array_equal(out.command, np.zeros(n))
    elif where == "action":
        np.testing.assert_array_equal(out.command, np.clip(-case.damping * v, -lim.effort, lim.effort))
    else:
        np.testing.assert_array_equal(out.command, np.zeros(n))  # no trustworthy velocity to damp


@settings(max_examples=EX(1500), **SETTINGS)
@given(st.floats(1e-3, 5.0), st.floats(1e-3, 5.0), st.floats(-100.0, 100.0), st.floats(-10.0, 10.0),
       st.floats(-10.0, 10.0), st.sampled_from(["position", "velocity", "effort"]))
def test_watchdog_triggers_exactly_after_its_timeout(obs_timeout: float, act_timeout: float, t0: float,
                                                     obs_age: float, act_age: float, interface: str) -> None:
    limits = JointLimits.create(["a", "b"], position_lower=-1.0, position_upper=1.0, velocity=1.0,
                                acceleration=10.0, effort=5.0)
    shield = SafetyShield(ShieldConfig(interface=interface, watchdog=WatchdogConfig(obs_timeout, act_timeout),  # type: ignore[arg-type]
                                       latch_on=[]), limits)
    now = t0 + 10.0
    shield.observe(RobotState([0.1, -0.2], [0.0, 0.0]), now - obs_age)
    shield.propose([0.0, 0.0], now - act_age)
    out = shield.step(now)
    obs_stale = not (0.0 <= now - (now - obs_age) <= obs_timeout)
    act_stale = not (0.0 <= now - (now - act_age) <= act_timeout)
    assert (Reason.OBSERVATION_TIMEOUT in out.reasons) == obs_stale
    assert (Reason.ACTION_TIMEOUT in out.reasons) == act_stale
    assert out.fallback == (obs_stale or act_stale)


@settings(max_examples=EX(1000), **SETTINGS)
@given(st.floats(0.005, 0.05), st.integers(1, 40), st.floats(0.01, 1.0))
def test_watchdog_never_repeats_the_last_action_past_timeout_plus_one_tick(period: float, k: int,
                                                                          timeout_periods: float) -> None:
    """The policy stops; the shield keeps ticking with fresh observations. The first fallback
    comes at the first tick strictly after the timeout, and every later tick is fallback."""
    timeout = timeout_periods * k * period
    limits = JointLimits.create(["a"], position_lower=-1.0, position_upper=1.0, velocity=1.0, acceleration=10.0)
    shield = SafetyShield(ShieldConfig(interface="velocity", control_period=period,
                                       watchdog=WatchdogConfig(1.0, timeout), latch_on=[]), limits)
    t_last_action = 3.0
    shield.observe(RobotState([0.0], [0.0]), t_last_action)
    shield.propose([0.5], t_last_action)
    for tick in range(0, 2 * k + 2):
        now = t_last_action + tick * period
        shield.observe(RobotState([0.0], [0.0]), now)
        out = shield.step(now)
        assert out.fallback == (now - t_last_action > timeout), (tick, now - t_last_action, timeout)
        if out.fallback:
            assert out.command is not None and out.command[0] == 0.0


@settings(max_examples=EX(1000), **SETTINGS)
@given(st.floats(-math.pi, math.pi), st.floats(-1.5, 1.5), st.floats(-math.pi, math.pi), st.floats(0.05, 1.0),
       st.floats(0.05, 1.0), st.lists(st.tuples(st.floats(-1.2, 1.2), st.floats(-1.2, 1.2)), min_size=1,
                                      max_size=6))
def test_estop_latches_and_reset_is_refused_while_tipped(roll: float, pitch: float, yaw: float, max_roll: float,
                                                         max_pitch: float, later: list[tuple[float, float]]) -> None:
    """A legged robot tipping beyond its roll / pitch bounds latches the e-stop; every output is
    the fallback until a reset, which is accepted only once the robot is upright again."""
    limits = JointLimits.create([f"leg{i}" for i in range(3)], position_lower=-1.0, position_upper=1.0,
                                velocity=2.0, acceleration=20.0)
    shield = SafetyShield(ShieldConfig(interface="position", orientation=OrientationConfig(max_roll, max_pitch),
                                       latch_on=[Reason.ORIENTATION_LIMIT]), limits)

    def quat(r: float, p: float, y: float) -> np.ndarray:
        cr, sr, cp, sp = math.cos(r / 2), math.sin(r / 2), math.cos(p / 2), math.sin(p / 2)
        cy, sy = math.cos(y / 2), math.sin(y / 2)
        return np.array([sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy,
                         cr * cp * cy + sr * sp * sy])

    def tipped(q: np.ndarray) -> bool:
        r, p = roll_pitch(q)
        return abs(r) > max_roll or abs(p) > max_pitch

    now = 0.0
    o = quat(roll, pitch, yaw)
    shield.observe(RobotState(np.zeros(3), np.zeros(3), orientation=o), now)
    shield.propose(np.full(3, 0.5), now)
    out = shield.step(now)
    latched = tipped(o)
    assert shield.estop_latched == latched and out.fallback == latched
    for r, p in later:
        now += 0.02
        o = quat(r, p, yaw)
        shield.observe(RobotState(np.zeros(3), np.zeros(3), orientation=o), now)
        shield.propose(np.full(3, 0.5), now)
        if latched:
            result = shield.reset_estop(now)
            assert result.accepted == (not tipped(o)), result.message
            if not result.accepted:
                assert Reason.ORIENTATION_LIMIT in result.persisting and "orientation_limit" in result.message
            latched = not result.accepted
        out = shield.step(now)
        latched = latched or tipped(o)
        assert shield.estop_latched == latched
        assert out.fallback == latched
        if latched:
            assert Reason.ESTOP in out.reasons
            np.testing.assert_array_equal(out.command, np.zeros(3))  # holds the measured position


@settings(max_examples=EX(1000), **SETTINGS)
@given(st.lists(st.floats(-0.4, 0.4), min_size=1, max_size=8), st.data())
def test_estop_request_latches_until_reset_and_reset_needs_a_fresh_state(actions: list[float], data: Any) -> None:
    limits = JointLimits.create(["a"], position_lower=-1.0, position_upper=1.0, velocity=1.0, acceleration=10.0)
    shield = SafetyShield(ShieldConfig(interface="velocity", latch_on=[]), limits)
    now = 0.0
    shield.request_estop("operator pressed the button", now)
    for a in actions:
        now += 0.02
        if data.draw(st.booleans()):
            shield.observe(RobotState([0.0], [0.0]), now)
        shield.propose([a], now)
        out = shield.step(now)
        assert out.fallback and out.estop and Reason.ESTOP in out.reasons and out.command[0] == 0.0
    fresh = shield._state is not None and 0.0 <= now - shield._state.time <= 0.1
    result = shield.reset_estop(now)
    assert result.accepted == fresh
    assert shield.estop_latched == (not fresh)


# -- workspace ----------------------------------------------------------------------------------


def planar_fk(q: np.ndarray) -> np.ndarray:
    """A 2-link planar arm (links 0.5 m and 0.4 m) in the x-z plane: cheap forward kinematics."""
    a = q[0]
    b = q[0] + q[1]
    return np.array([0.5 * math.cos(a) + 0.4 * math.cos(b), 0.0, 0.5 * math.sin(a) + 0.4 * math.sin(b)])


@settings(max_examples=EX(1000), **SETTINGS)
@given(st.floats(-2.0, 2.0), st.floats(-2.0, 2.0), st.floats(0.05, 0.4), st.floats(0.5, 5.0),
       st.floats(1.0, 200.0), st.floats(0.005, 0.05),
       st.lists(st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)), min_size=1, max_size=15),
       st.sampled_from(["position", "velocity"]))
def test_the_end_effector_never_leaves_the_workspace_box(q0: float, q1: float, half: float, vmax: float,
                                                        amax: float, dt: float, actions: list[tuple[float, float]],
                                                        interface: str) -> None:
    """Starting inside the box, with a robot that tracks the commands, the end effector stays in
    the box whatever the policy asks (position: the commanded targets; velocity: the positions
    the commands lead to)."""
    start = np.array([q0, q1])
    centre = planar_fk(start)
    low, high = centre - half, centre + half
    limits = JointLimits.create(["s", "e"], position_lower=-3.0, position_upper=3.0, velocity=vmax,
                                acceleration=amax)
    config = ShieldConfig(interface=interface, normalized_actions=True,  # type: ignore[arg-type]
                          control_period=dt, latch_on=[],
                          workspace=WorkspaceConfig(ee_link="tip", low=list(low), high=list(high)))
    shield = SafetyShield(config, limits, planar_fk)
    q, v = start.copy(), np.zeros(2)
    now = 0.0
    for action in actions:
        shield.observe(RobotState(q, v), now)
        shield.propose(list(action), now)
        out = shield.step(now)
        assert not out.fallback, out.interventions
        if interface == "position":
            v = (out.command - q) / dt
            q = out.command
        else:
            v = out.command
            q = q + v * dt
        assert box_distance(planar_fk(q), low, high) <= 1e-12, (q, planar_fk(q), low, high)
        now += dt


@pytest.mark.parametrize("seed", range(2))
def test_kuka_workspace_holds_under_random_policies(seed: int) -> None:
    """The same property on the Kuka iiwa chain parsed from its URDF (numpy forward kinematics)."""
    import os

    pybullet_data = pytest.importorskip("pybullet_data")
    from drl_ros.core.shield import SerialChain, urdf_joint_limits

    path = os.path.join(pybullet_data.getDataPath(), "kuka_iiwa", "model.urdf")
    limits = urdf_joint_limits(path)
    from drl_ros.core.shield import JointLimitsOverride, tighten_limits

    limits = tighten_limits(limits, JointLimitsOverride(velocity=2.0, acceleration=20.0))
    chain = SerialChain.from_urdf(path, "lbr_iiwa_link_0", "lbr_iiwa_link_7", limits.names)
    q = np.array([0.0, 0.5, 0.0, -1.585, 0.0, 1.055, 0.0])
    low, high = chain(q) - np.array([0.15, 0.2, 0.1]), chain(q) + np.array([0.15, 0.2, 0.1])
    config = ShieldConfig(interface="position", normalized_actions=True, latch_on=[],
                          scaling=ActionScalingConfig(mode="delta"),
                          workspace=WorkspaceConfig(ee_link="lbr_iiwa_link_7", low=list(low), high=list(high)))
    shield = SafetyShield(config, limits, chain)
    rng = np.random.default_rng(seed)
    direction = rng.uniform(-1, 1, 7)
    hits = 0
    for k in range(200):
        if k % 40 == 0:
            direction = rng.uniform(-1, 1, 7)
        shield.observe(RobotState(q, np.zeros(7)), k * 0.02)
        shield.propose(np.clip(direction + 0.3 * rng.normal(size=7), -1, 1), k * 0.02)
        out = shield.step(k * 0.02)
        assert not out.fallback
        hits += Reason.WORKSPACE_LIMIT in out.reasons
        q = out.command
        assert box_distance(chain(q), low, high) <= 1e-12
    assert hits > 0  # the policy did push against the box


@settings(max_examples=EX(1000), **SETTINGS)
@given(cases(interface="velocity", max_steps=10))
def test_a_tracking_robot_never_forces_a_rate_limit_violation(case: Case) -> None:
    """Velocity interface, the robot moves exactly as commanded, from inside its limits at rest:
    the shield can always satisfy the rate limits (RATE_LIMIT_INFEASIBLE only comes from a
    measured state the commands did not produce)."""
    lim, n, dt = case.limits, case.limits.n, case.dt
    shield = _shield(case, latch_on=[])
    lo = np.where(np.isfinite(lim.position_lower), lim.position_lower, -1.0)
    hi = np.where(np.isfinite(lim.position_upper), lim.position_upper, 1.0)
    q, v = (lo + hi) / 2.0, np.zeros(n)
    now = 0.0
    for step in case.steps:
        shield.observe(RobotState(q, v), now)
        action = step["action_value"] if step["action"] == "random" else [0.0] * n
        shield.propose(action, now)
        out = shield.step(now)
        assert not out.fallback and Reason.RATE_LIMIT_INFEASIBLE not in out.reasons
        v = out.command
        q = q + v * dt
        assert np.all(q <= lim.position_upper + TOL) and np.all(q >= lim.position_lower - TOL)
        now += dt
