"""The safety shield: the last check every command passes before it reaches the robot.

One pipeline, configured by :class:`~drl_ros.core.shield.config.ShieldConfig` (nav2's collision
monitor is the model: a separate stage in the command chain, configured from YAML). Each
:meth:`SafetyShield.step`, once per control period:

1. **Lifecycle and e-stop**: an inactive shield or a latched e-stop outputs the safe fallback.
2. **Faults**, evaluated on the latest inputs: a stale or missing observation or action
   (watchdog), wrong dimensions or types, NaN / infinity (rejected explicitly: clipping keeps
   NaN), base roll / pitch beyond bounds, a measured joint beyond its limits, a tracking error, the
   measured end effector outside the workspace. Any fault outputs the fallback; faults listed in
   ``latch_on`` latch the e-stop.
3. **Action mapping**: normalized actions are clipped to [-1, 1] and scaled.
4. **Joint limits**, per joint, as intervals of the allowed command: the hard limits (position
   range, speed, effort, and the stopping distance at the allowed deceleration, ros2_control's
   ``SimpleJointLimiter`` behaviour) intersected with the rate limits (acceleration, effort
   rate). When the measured state leaves the two disjoint, the hard limits win and the step is
   recorded as RATE_LIMIT_INFEASIBLE.
5. **Workspace** (arms): a step that would take the end effector out of its box (or farther
   from it) is shortened by bisection toward the braking step, or held.

The fallback depends on the command interface: position → hold the last measured position
(inside the limits); velocity → zero; effort → damping ``-Kd · velocity`` (zero without a fresh
velocity). It is never the last action.

Time is always passed in (``now``, seconds, any monotonic clock): the shield reads no clock, so
its behaviour is deterministic and testable. Rate limits are per command: call :meth:`step` once
per ``control_period``.

Position commands are limited against the shield's own previous command (the reference), as
ros2_control's limiters do: the command stream itself then obeys every limit, including the
stopping distance, by induction from a reference that starts at the measured position at rest.
Velocity and effort commands are limited against the measured position and velocity, which
the shield cannot choose; that is where the rate limits can become infeasible.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drl_ros.core.shield.config import Reason, ShieldConfig
from drl_ros.core.shield.kinematics import SerialChain
from drl_ros.core.shield.limits import JointLimits, LimitsError, parse_urdf_joints, tighten_limits, urdf_joint_limits

__all__ = [
    "Intervention",
    "ResetResult",
    "RobotState",
    "SafetyShield",
    "ShieldOutput",
    "box_distance",
    "roll_pitch",
    "stopping_velocity_bounds",
]

ForwardKinematics = Callable[[np.ndarray], np.ndarray]
"""``q (n,) -> end-effector position (3,)`` in the workspace box's frame."""

# Relative slack for comparisons of computed bounds, so float rounding is not reported as a
# violation or an infeasibility.
_EPS = 1e-9
# A joint's share of the cost is capped at the width of the normalized range [-1, 1].
_COST_CAP = 2.0
_HISTORY = 1000


@dataclass(frozen=True)
class RobotState:
    """The latest measured state, in the shield's joint order.

    ``positions`` and ``velocities`` are ``(n,)``; ``velocities`` may be None for a position
    interface (then the speed checks are skipped); ``orientation`` is the base's IMU quaternion
    ``(x, y, z, w)``, needed when roll / pitch bounds are configured.
    """

    positions: Any
    velocities: Any = None
    efforts: Any = None
    orientation: Any = None


@dataclass(frozen=True)
class Intervention:
    """One thing the shield did, and why."""

    reason: Reason
    message: str
    joints: tuple[int, ...] = ()
    """Indices of the joints concerned (empty for whole-robot reasons)."""


@dataclass(frozen=True)
class ShieldOutput:
    """The result of one :meth:`SafetyShield.step`."""

    command: np.ndarray | None
    """``(n,)`` float64 in the interface's units; None only for a position interface that has
    never received a valid observation (nothing is safe to command: publish nothing)."""
    interface: str
    fallback: bool
    """The command is the safe fallback (inactive, e-stop or a fault)."""
    estop: bool
    """The e-stop is latched."""
    interventions: tuple[Intervention, ...]
    cost: float
    """Per-step constraint cost for constrained RL: the size of the correction (per joint
    ``|command - requested|`` in action units, capped at 2) plus 1 per distinct reason."""
    requested: np.ndarray | None
    """The requested command in interface units, when the action was valid."""
    applied_action: np.ndarray | None
    """The command as a normalized action in [-1, 1] (``normalized_actions`` only): what a
    learner should store as the action taken."""
    stamp: float

    @property
    def reasons(self) -> frozenset[Reason]:
        return frozenset(i.reason for i in self.interventions)


@dataclass(frozen=True)
class ResetResult:
    accepted: bool
    message: str
    persisting: tuple[Reason, ...] = ()


@dataclass
class _Input:
    """A received input: when, the raw value, and the validation result."""

    time: float
    fault: Intervention | None
    value: Any = None


@dataclass
class _ValidState:
    q: np.ndarray
    v: np.ndarray | None
    orientation: np.ndarray | None


def box_distance(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Euclidean distance from ``point`` (3,) to the box ``[low, high]`` (0 inside); inf for NaN."""
    p = np.asarray(point, dtype=np.float64)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        return math.inf
    gap = np.maximum(low - p, 0.0) + np.maximum(p - high, 0.0)
    return float(np.sqrt(np.dot(gap, gap)))


def roll_pitch(quaternion: np.ndarray) -> tuple[float, float]:
    """Roll and pitch (rad, ZYX convention) of a quaternion ``(x, y, z, w)`` (normalized here)."""
    x, y, z, w = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2.0 * (w * y - z * x))))
    return roll, pitch


def stopping_velocity_bounds(q: np.ndarray, lower: np.ndarray, upper: np.ndarray, accel: np.ndarray,
                             dt: float) -> tuple[np.ndarray, np.ndarray]:
    """The velocities ``v`` for which one step ``q + v·dt`` followed by braking at ``accel``
    stops inside ``[lower, upper]``: ``q + v·dt + v|v| / (2·accel)`` within the limits.

    The continuous stopping distance ``v²/(2a)`` bounds the distance of any braking that takes
    steps of ``a·dt``, so a command inside these bounds can always be followed by a braking step
    that stays inside them (the induction behind the position interface's guarantee). Where
    ``q`` is already beyond a limit only zero or motion back inside is allowed.

    Solved stably as ``v = 2d / (dt + sqrt(dt² + 2d/a))`` with ``d`` the distance to the limit.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        d_up = np.maximum(upper - q, 0.0)
        d_lo = np.maximum(q - lower, 0.0)
        hi = np.where(np.isinf(d_up), np.inf, 2.0 * d_up / (dt + np.sqrt(dt * dt + 2.0 * d_up / accel)))
        lo = np.where(np.isinf(d_lo), -np.inf, -2.0 * d_lo / (dt + np.sqrt(dt * dt + 2.0 * d_lo / accel)))
    return lo, hi


def _fresh(stamp: float | None, now: float, timeout: float) -> bool:
    """Fresh iff ``0 <= now - stamp <= timeout`` (a message from the future is not trusted)."""
    if stamp is None or not math.isfinite(now):
        return False
    age = now - stamp
    return 0.0 <= age <= timeout


def _vector(value: Any, n: int, what: str) -> tuple[np.ndarray | None, str | None]:
    """``value`` as a float64 ``(n,)`` array, or an error message (wrong type or shape)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        return None, f"{what} is not numeric ({exc})"
    if arr.shape != (n,):
        return None, f"{what} has shape {arr.shape}, expected ({n},)"
    return arr, None


class SafetyShield:
    """The shield pipeline for one robot (see the module docstring).

    Args:
        config: the shield configuration.
        limits: the final (already tightened) joint limits, in command order.
        forward_kinematics: ``q (n,) -> (3,)`` end-effector position, required when
            ``config.workspace`` is set (:meth:`from_config` builds one from the URDF).

    Use from a node: :meth:`observe` on each state message, :meth:`propose` on each action
    message, :meth:`step` on each control tick (publish ``command`` unless None),
    :meth:`request_estop` / :meth:`reset_estop` from the services, :meth:`activate` /
    :meth:`deactivate` from the lifecycle callbacks.
    """

    def __init__(self, config: ShieldConfig, limits: JointLimits,
                 forward_kinematics: ForwardKinematics | None = None) -> None:
        self.config = config
        self.limits = limits
        self.n = limits.n
        self.dt = float(config.control_period)
        self.interface = config.interface
        self._check_limits_cover_interface()
        self._scale, self._offset = self._scaling()
        self._unit = self._scale if config.normalized_actions else self._raw_unit()
        damping = np.asarray(config.damping, dtype=np.float64)
        if damping.shape not in ((1,), (self.n,)):
            raise ValueError(f"damping needs 1 or {self.n} gains, got {damping.shape[0]}")
        self._damping = np.broadcast_to(damping, (self.n,)).copy()
        self._fk = forward_kinematics
        if config.workspace is not None:
            if forward_kinematics is None:
                raise ValueError("the workspace check needs forward kinematics (pass forward_kinematics "
                                 "or build the shield with from_config and a URDF)")
            self._box_low = np.asarray(config.workspace.low, dtype=np.float64)
            self._box_high = np.asarray(config.workspace.high, dtype=np.float64)
        self._latch_on = frozenset(config.latch_on)

        self.active = True
        self._state: _Input | None = None
        self._good: _ValidState | None = None
        """The last valid measured state (what the position fallback holds)."""
        self._action: _Input | None = None
        self._ref_q: np.ndarray | None = None
        """Position interface: the last command; None until the next nominal step re-initializes it."""
        self._ref_v = np.zeros(self.n)
        """The last command's velocity (position, velocity interfaces)."""
        self._ref_effort = np.zeros(self.n)
        self._action_base = np.zeros(self.n)
        """What the current normalized action was scaled onto (offset, or the delta reference)."""
        self._latched: dict[Reason, str] = {}
        self.counts: Counter[Reason] = Counter()
        """Steps on which each reason occurred, since construction (for diagnostics)."""
        self.steps = 0
        self.fallback_steps = 0
        self.events: deque[tuple[float, Intervention]] = deque(maxlen=_HISTORY)
        """Recent interventions with their time, newest last (e-stop latches and resets too)."""
        self.last_output: ShieldOutput | None = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: ShieldConfig, *, limits: JointLimits | None = None,
                    forward_kinematics: ForwardKinematics | None = None,
                    urdf_dir: str | Path | None = None) -> "SafetyShield":
        """Build a shield: limits from ``config.urdf`` (or ``limits``) tightened by the config,
        and, for a workspace, forward kinematics of the URDF chain.

        Args:
            urdf_dir: resolves a relative ``config.urdf`` (e.g. the YAML file's directory).

        Raises:
            LimitsError: an invalid URDF or an override that would loosen a limit.
        """
        urdf: Path | None = None
        if config.urdf is not None:
            urdf = Path(config.urdf)
            if not urdf.is_absolute() and urdf_dir is not None:
                urdf = Path(urdf_dir) / urdf
        if limits is None:
            if urdf is None:
                raise ValueError("the shield needs joint limits: set urdf in its config or pass limits")
            limits = urdf_joint_limits(urdf, config.joints)
        elif config.joints is not None:
            limits = limits.select(config.joints)
        limits = tighten_limits(limits, config.default_limits, config.limits)
        if config.workspace is not None and forward_kinematics is None:
            if urdf is None:
                raise ValueError("the workspace check needs a URDF (or forward_kinematics)")
            base = config.workspace.base_link
            if base is None:
                joints = parse_urdf_joints(urdf)
                children = {j.child for j in joints}
                roots = [j.parent for j in joints if j.parent not in children]
                if not roots:
                    raise LimitsError(f"{urdf}: no root link")
                base = roots[0]
            forward_kinematics = SerialChain.from_urdf(urdf, base, config.workspace.ee_link, limits.names)
        return cls(config, limits, forward_kinematics)

    def _check_limits_cover_interface(self) -> None:
        lim = self.limits
        needed: dict[str, tuple[str, ...]] = {
            "position": ("velocity", "acceleration"),
            "velocity": ("velocity", "acceleration"),
            "effort": ("effort",),
        }
        for name in needed[self.interface]:
            values = getattr(lim, name)
            if not np.all(np.isfinite(values)):
                bad = [lim.names[i] for i in np.flatnonzero(~np.isfinite(values))]
                raise LimitsError(f"the {self.interface} interface needs a finite {name} limit for every joint; "
                                  f"missing for {bad}: set default_limits.{name} or limits.<joint>.{name}")

    def _raw_unit(self) -> np.ndarray:
        lim = self.limits
        if self.interface == "position":
            half = (lim.position_upper - lim.position_lower) / 2.0
            return np.where(np.isfinite(half) & (half > 0.0), half, 1.0)
        return lim.velocity.copy() if self.interface == "velocity" else lim.effort.copy()

    def _scaling(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, lim, n = self.config.scaling, self.limits, self.n
        if cfg.scale is not None:
            scale = np.asarray(cfg.scale, dtype=np.float64)
            if scale.shape == (1,):
                scale = np.full(n, scale[0])
        elif cfg.mode == "absolute":
            if self.interface == "position":
                scale = (lim.position_upper - lim.position_lower) / 2.0
            else:
                scale = (lim.velocity if self.interface == "velocity" else lim.effort).copy()
        else:
            per_second = {"position": lim.velocity, "velocity": lim.acceleration, "effort": lim.effort_rate}
            scale = per_second[self.interface] * self.dt
        if cfg.offset is not None:
            offset = np.asarray(cfg.offset, dtype=np.float64)
            if offset.shape == (1,):
                offset = np.full(n, offset[0])
        elif cfg.mode == "absolute" and self.interface == "position":
            offset = (lim.position_upper + lim.position_lower) / 2.0
        else:
            offset = np.zeros(n)
        if scale.shape != (n,) or offset.shape != (n,):
            raise ValueError(f"scaling.scale and scaling.offset need 1 or {n} values")
        if self.config.normalized_actions and not (np.all(np.isfinite(scale)) and np.all(scale > 0.0)
                                                   and np.all(np.isfinite(offset))):
            raise ValueError("normalized actions need a finite positive scale and a finite offset per joint "
                             "(unlimited joints need scaling.scale / scaling.offset in the config)")
        return scale, offset

    # -- inputs ----------------------------------------------------------------------------------

    def observe(self, state: RobotState, now: float) -> None:
        """Record the latest measured state, received at ``now``."""
        fault, valid = self._validate_state(state)
        self._state = _Input(float(now), fault, valid)
        if valid is not None:
            self._good = valid

    def propose(self, action: Any, now: float) -> None:
        """Record the latest policy action (normalized or in interface units), received at ``now``."""
        arr, error = _vector(action, self.n, "action")
        fault: Intervention | None = None
        if arr is None:
            fault = Intervention(Reason.INVALID_ACTION, error or "invalid action")
        elif not np.all(np.isfinite(arr)):
            bad = tuple(int(i) for i in np.flatnonzero(~np.isfinite(arr)))
            fault = Intervention(Reason.NON_FINITE_ACTION, f"action has non-finite values at joints {list(bad)}", bad)
        self._action = _Input(float(now), fault, arr if fault is None else None)

    def _validate_state(self, state: RobotState) -> tuple[Intervention | None, _ValidState | None]:
        if not isinstance(state, RobotState):
            return Intervention(Reason.INVALID_STATE, f"expected a RobotState, got {type(state).__name__}"), None
        q, error = _vector(state.positions, self.n, "positions")
        if q is None:
            return Intervention(Reason.INVALID_STATE, error or ""), None
        v: np.ndarray | None = None
        if state.velocities is not None:
            v, error = _vector(state.velocities, self.n, "velocities")
            if v is None:
                return Intervention(Reason.INVALID_STATE, error or ""), None
        elif self.interface != "position":
            return Intervention(Reason.INVALID_STATE, f"the {self.interface} interface needs measured velocities"), None
        orientation: np.ndarray | None = None
        if self.config.orientation is not None or state.orientation is not None:
            if state.orientation is None:
                return Intervention(Reason.INVALID_STATE, "roll/pitch bounds need the base orientation"), None
            orientation, error = _vector(state.orientation, 4, "orientation")
            if orientation is None:
                return Intervention(Reason.INVALID_STATE, error or ""), None
        parts = [("positions", q), ("velocities", v), ("orientation", orientation)]
        if state.efforts is not None:
            efforts, error = _vector(state.efforts, self.n, "efforts")
            if efforts is None:
                return Intervention(Reason.INVALID_STATE, error or ""), None
            parts.append(("efforts", efforts))
        for name, arr in parts:
            if arr is not None and not np.all(np.isfinite(arr)):
                bad = tuple(int(i) for i in np.flatnonzero(~np.isfinite(arr)))
                joints = bad if name != "orientation" else ()
                return Intervention(Reason.NON_FINITE_STATE, f"{name} has non-finite values at {list(bad)}",
                                    joints), None
        if orientation is not None and abs(float(np.linalg.norm(orientation)) - 1.0) > 0.1:
            return Intervention(Reason.INVALID_STATE,
                                f"orientation is not a unit quaternion (norm {np.linalg.norm(orientation):.3g})"), None
        return None, _ValidState(q, v, orientation)

    # -- faults ------------------------------------------------------------------------------

    def faults(self, now: float) -> list[Intervention]:
        """The faults present at ``now`` given the latest inputs (empty: all clear)."""
        wd = self.config.watchdog
        found: list[Intervention] = []
        state = self._state
        if state is None:
            found.append(Intervention(Reason.OBSERVATION_TIMEOUT, "no observation received yet"))
        elif not _fresh(state.time, now, wd.observation_timeout):
            found.append(Intervention(Reason.OBSERVATION_TIMEOUT,
                                      f"last observation at {state.time:.6f}, now {now:.6f} "
                                      f"(timeout {wd.observation_timeout} s)"))
        elif state.fault is not None:
            found.append(state.fault)
        else:
            found += self._state_faults(state.value)
        action = self._action
        if action is None:
            found.append(Intervention(Reason.ACTION_TIMEOUT, "no action received yet"))
        elif not _fresh(action.time, now, wd.action_timeout):
            found.append(Intervention(Reason.ACTION_TIMEOUT, f"last action at {action.time:.6f}, now {now:.6f} "
                                                             f"(timeout {wd.action_timeout} s)"))
        elif action.fault is not None:
            found.append(action.fault)
        return found

    def _state_faults(self, s: _ValidState) -> list[Intervention]:
        cfg, lim = self.config, self.limits
        found: list[Intervention] = []
        if cfg.orientation is not None and s.orientation is not None:
            roll, pitch = roll_pitch(s.orientation)
            if abs(roll) > cfg.orientation.max_roll or abs(pitch) > cfg.orientation.max_pitch:
                found.append(Intervention(Reason.ORIENTATION_LIMIT,
                                          f"roll {roll:.3f} rad, pitch {pitch:.3f} rad beyond "
                                          f"±{cfg.orientation.max_roll:.3f} / ±{cfg.orientation.max_pitch:.3f}"))
        tol = cfg.state_position_tolerance
        out = (s.q < lim.position_lower - tol) | (s.q > lim.position_upper + tol)
        if s.v is not None:
            out |= np.abs(s.v) > lim.velocity * (1.0 + cfg.state_velocity_tolerance)
        if out.any():
            joints = tuple(int(i) for i in np.flatnonzero(out))
            found.append(Intervention(Reason.STATE_OUT_OF_LIMITS,
                                      f"measured state beyond the limits of {[lim.names[i] for i in joints]}", joints))
        if cfg.max_tracking_error is not None and self.interface == "position" and self._ref_q is not None:
            err = np.abs(s.q - self._ref_q) > cfg.max_tracking_error
            if err.any():
                joints = tuple(int(i) for i in np.flatnonzero(err))
                found.append(Intervention(Reason.TRACKING_ERROR,
                                          f"measured position more than {cfg.max_tracking_error} from the command "
                                          f"for {[lim.names[i] for i in joints]}", joints))
        if cfg.workspace is not None and self._fk is not None:
            dist = box_distance(self._fk(s.q), self._box_low, self._box_high)
            if dist > cfg.workspace.tolerance:
                found.append(Intervention(Reason.WORKSPACE_EXIT,
                                          f"end effector {dist:.4f} m outside the workspace box"))
        return found

    # -- e-stop and lifecycle ------------------------------------------------------------------

    @property
    def estop_latched(self) -> bool:
        return bool(self._latched)

    @property
    def latched_causes(self) -> dict[Reason, str]:
        return dict(self._latched)

    def request_estop(self, message: str = "e-stop requested", now: float = math.nan) -> None:
        """Latch the e-stop (e.g. from the e-stop service)."""
        self._latch(Intervention(Reason.ESTOP_REQUEST, message), now)

    def _latch(self, cause: Intervention, now: float) -> None:
        if cause.reason not in self._latched:
            self._latched[cause.reason] = cause.message
            self.events.append((now, Intervention(Reason.ESTOP, f"latched: {cause.reason.value}: {cause.message}")))

    def reset_estop(self, now: float) -> ResetResult:
        """Clear the e-stop, unless a cause persists or the state cannot be verified at ``now``."""
        if not self._latched:
            return ResetResult(True, "e-stop not latched")
        present = {f.reason: f for f in self.faults(now)}
        unverifiable = [r for r in (Reason.OBSERVATION_TIMEOUT, Reason.INVALID_STATE, Reason.NON_FINITE_STATE)
                        if r in present]
        persisting = tuple(r for r in self._latched if r in present)
        blocking = tuple(dict.fromkeys(persisting + tuple(unverifiable)))
        if blocking:
            message = "reset refused: " + "; ".join(f"{r.value}: {present[r].message}" for r in blocking)
            self.events.append((now, Intervention(Reason.ESTOP, message)))
            return ResetResult(False, message, blocking)
        causes = ", ".join(r.value for r in self._latched)
        self._latched.clear()
        self._ref_q = None  # restart the command stream from the measured position, at rest
        self._ref_v[:] = 0.0
        self._ref_effort[:] = 0.0
        message = f"e-stop reset (causes were: {causes})"
        self.events.append((now, Intervention(Reason.ESTOP, message)))
        return ResetResult(True, message)

    def activate(self) -> None:
        """Commands flow again, starting from the measured position at rest."""
        self.active = True
        self._ref_q = None
        self._ref_v[:] = 0.0
        self._ref_effort[:] = 0.0

    def deactivate(self) -> None:
        """Output the fallback from now on (lifecycle inactive)."""
        self.active = False

    # -- the pipeline -----------------------------------------------------------------------------

    def filter(self, action: Any, state: RobotState, now: float) -> ShieldOutput:
        """One-call form for loops that have both inputs at once: observe, propose, step."""
        self.observe(state, now)
        self.propose(action, now)
        return self.step(now)

    def step(self, now: float) -> ShieldOutput:
        """The command for this control period (see the module docstring)."""
        now = float(now)
        interventions: list[Intervention] = []
        faults = self.faults(now) if self.active else []
        for fault in faults:
            if fault.reason in self._latch_on:
                self._latch(fault, now)
        requested = self._requested()
        fallback_reasons: list[Intervention] = []
        if not self.active:
            fallback_reasons.append(Intervention(Reason.INACTIVE, "shield inactive: fallback output"))
        if self._latched:
            causes = ", ".join(f"{r.value} ({m})" for r, m in self._latched.items())
            fallback_reasons.append(Intervention(Reason.ESTOP, f"e-stop latched: {causes}"))
        fallback_reasons += faults
        if fallback_reasons:
            interventions += fallback_reasons
            command = self._fallback(now)
            # The next nominal command continues from the fallback, at rest.
            self._ref_q = command.copy() if self.interface == "position" and command is not None else None
            self._ref_v = np.zeros(self.n)
            self._ref_effort = command.copy() if self.interface == "effort" and command is not None \
                else np.zeros(self.n)
            return self._finish(now, command, True, interventions, requested[0] if requested else None)
        assert requested is not None  # no fault: the action is valid and fresh
        target, clipped = requested
        if clipped:
            interventions.append(Intervention(Reason.ACTION_CLIPPED, f"normalized action outside [-1, 1] at joints "
                                                                     f"{list(clipped)}", clipped))
        if self.interface == "position":
            command = self._limit_position(target, interventions)
        elif self.interface == "velocity":
            command = self._limit_velocity(target, interventions)
        else:
            command = self._limit_effort(target, interventions)
        return self._finish(now, command, False, interventions, target)

    def _requested(self) -> tuple[np.ndarray, tuple[int, ...]] | None:
        """The requested command in interface units (and the joints whose action was clipped)."""
        action = self._action
        if action is None or action.value is None:
            return None
        a = action.value
        if not self.config.normalized_actions:
            return a.copy(), ()
        clipped = tuple(int(i) for i in np.flatnonzero(np.abs(a) > 1.0))
        a = np.clip(a, -1.0, 1.0)
        if self.config.scaling.mode == "absolute":
            self._action_base = self._offset
        elif self.interface == "position" and self._ref_q is None and self._good is None:
            return None  # nothing to add the delta to yet (the step falls back anyway)
        else:
            self._action_base = self._reference().copy()
        return self._action_base + self._scale * a, clipped

    def _reference(self) -> np.ndarray:
        """What delta actions add to: the last command (position), last velocity or effort."""
        if self.interface == "position":
            if self._ref_q is None:
                self._init_position_reference()
            assert self._ref_q is not None
            return self._ref_q
        return self._ref_v if self.interface == "velocity" else self._ref_effort

    def _init_position_reference(self) -> None:
        assert self._good is not None
        self._ref_q = np.clip(self._good.q, self.limits.position_lower, self.limits.position_upper)
        self._ref_v = np.zeros(self.n)

    def _fallback(self, now: float) -> np.ndarray | None:
        lim = self.limits
        if self.interface == "position":
            if self._good is None:
                return None
            return np.clip(self._good.q, lim.position_lower, lim.position_upper)
        if self.interface == "velocity":
            return np.zeros(self.n)
        # Damping needs a velocity measured now: a stale one could push a robot that has stopped.
        state = self._state
        fresh = state is not None and state.value is not None and \
            _fresh(state.time, now, self.config.watchdog.observation_timeout)
        if not fresh or self._good is None or self._good.v is None:
            return np.zeros(self.n)
        with np.errstate(over="ignore"):  # a finite but absurd velocity saturates at the effort limit
            return np.clip(-self._damping * self._good.v, -lim.effort, lim.effort)

    # -- per-joint limits --------------------------------------------------------------------------

    def _velocity_window(self, q: np.ndarray, target_position: np.ndarray | None,
                         interventions_labels: dict[Reason, list[int]],
                         v_des: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clip the desired velocity ``v_des`` of a step from ``q`` into the allowed interval and
        label the binding constraint per joint. Returns the velocity and the interval."""
        lim, dt = self.limits, self.dt
        brake_lo, brake_hi = stopping_velocity_bounds(q, lim.position_lower, lim.position_upper, lim.acceleration, dt)
        rate_lo = self._ref_v - lim.acceleration * dt
        rate_hi = self._ref_v + lim.acceleration * dt
        hard_lo = np.maximum(brake_lo, -lim.velocity)
        hard_hi = np.minimum(brake_hi, lim.velocity)
        lo = np.maximum(hard_lo, rate_lo)
        hi = np.minimum(hard_hi, rate_hi)
        infeasible = lo > hi
        # Hard limits win: take the point of the hard interval nearest the rate interval.
        lo = np.where(infeasible, np.where(rate_lo > hard_hi, hard_hi, hard_lo), lo)
        hi = np.where(infeasible, np.where(rate_lo > hard_hi, hard_hi, hard_lo), hi)
        v = np.clip(v_des, lo, hi)
        slack = _EPS * (1.0 + np.abs(self._ref_v) + lim.acceleration * dt)
        gap = np.where(infeasible, np.maximum(rate_lo - hard_hi, hard_lo - rate_hi), 0.0)
        for i in range(self.n):
            if infeasible[i] and gap[i] > slack[i]:
                interventions_labels.setdefault(Reason.RATE_LIMIT_INFEASIBLE, []).append(i)
            if v[i] == v_des[i]:
                continue
            bound = hi[i] if v_des[i] > v[i] else lo[i]
            upward = v_des[i] > v[i]
            if infeasible[i]:
                reason = Reason.RATE_LIMIT_INFEASIBLE
            elif bound == (rate_hi[i] if upward else rate_lo[i]) and bound != (hard_hi[i] if upward else hard_lo[i]):
                reason = Reason.ACCELERATION_LIMIT
            elif bound == (lim.velocity[i] if upward else -lim.velocity[i]):
                reason = Reason.VELOCITY_LIMIT
            elif target_position is not None and not (lim.position_lower[i] <= target_position[i]
                                                      <= lim.position_upper[i]):
                reason = Reason.POSITION_LIMIT
            else:
                reason = Reason.BRAKING
            interventions_labels.setdefault(reason, []).append(i)
        return v, lo, hi

    def _braking_velocity(self) -> np.ndarray:
        """The reference velocity moved toward zero by one step of the allowed deceleration."""
        step = np.minimum(np.abs(self._ref_v), self.limits.acceleration * self.dt)
        return self._ref_v - np.sign(self._ref_v) * step

    def _limit_position(self, target: np.ndarray, interventions: list[Intervention]) -> np.ndarray:
        if self._ref_q is None:
            self._init_position_reference()
        assert self._ref_q is not None
        lim, dt, q_ref = self.limits, self.dt, self._ref_q
        labels: dict[Reason, list[int]] = {}
        with np.errstate(over="ignore"):
            v_des = (target - q_ref) / dt
        v, lo, hi = self._velocity_window(q_ref, target, labels, v_des)
        v = self._workspace(q_ref, v, lo, hi, labels)
        command = np.clip(q_ref + v * dt, lim.position_lower, lim.position_upper)
        self._ref_v = (command - q_ref) / dt
        self._ref_q = command.copy()
        interventions += self._label_interventions(labels)
        return command

    def _limit_velocity(self, target: np.ndarray, interventions: list[Intervention]) -> np.ndarray:
        assert self._good is not None
        labels: dict[Reason, list[int]] = {}
        q = self._good.q
        v, lo, hi = self._velocity_window(q, None, labels, target)
        v = self._workspace(q, v, lo, hi, labels)
        self._ref_v = v.copy()
        interventions += self._label_interventions(labels)
        return v

    def _limit_effort(self, target: np.ndarray, interventions: list[Intervention]) -> np.ndarray:
        assert self._good is not None and self._good.v is not None
        lim, dt = self.limits, self.dt
        q, v = self._good.q, self._good.v
        hard_lo, hard_hi = -lim.effort.copy(), lim.effort.copy()
        # ros2_control's effort limiter: at a position limit, or beyond the speed limit, no
        # effort may push further that way.
        push_up = ((q >= lim.position_upper) & (v >= 0.0)) | (v > lim.velocity)
        push_down = ((q <= lim.position_lower) & (v <= 0.0)) | (v < -lim.velocity)
        direction_hi = np.where(push_up, 0.0, hard_hi)
        direction_lo = np.where(push_down, 0.0, hard_lo)
        rate_lo = self._ref_effort - lim.effort_rate * dt
        rate_hi = self._ref_effort + lim.effort_rate * dt
        lo = np.maximum(direction_lo, rate_lo)
        hi = np.minimum(direction_hi, rate_hi)
        infeasible = lo > hi
        nearest = np.where(rate_lo > direction_hi, direction_hi, direction_lo)
        lo = np.where(infeasible, nearest, lo)
        hi = np.where(infeasible, nearest, hi)
        command = np.clip(target, lo, hi)
        labels: dict[Reason, list[int]] = {}
        for i in range(self.n):
            if infeasible[i]:
                labels.setdefault(Reason.RATE_LIMIT_INFEASIBLE, []).append(i)
            if command[i] == target[i]:
                continue
            upward = target[i] > command[i]
            bound = hi[i] if upward else lo[i]
            if infeasible[i]:
                continue
            if bound == (rate_hi[i] if upward else rate_lo[i]) and bound != (direction_hi[i] if upward
                                                                              else direction_lo[i]):
                reason = Reason.EFFORT_RATE_LIMIT
            elif bound == (hard_hi[i] if upward else hard_lo[i]):
                reason = Reason.EFFORT_LIMIT
            elif (push_up[i] if upward else push_down[i]) and abs(v[i]) > lim.velocity[i]:
                reason = Reason.VELOCITY_LIMIT
            else:
                reason = Reason.POSITION_LIMIT
            labels.setdefault(reason, []).append(i)
        self._ref_effort = command.copy()
        interventions += self._label_interventions(labels)
        return command

    def _workspace(self, q: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   labels: dict[Reason, list[int]]) -> np.ndarray:
        """Shorten the step ``q + v·dt`` so the end effector does not leave the box (or get
        farther from it than it is at ``q``): bisection between the braking step and ``v``,
        else hold (velocity zero)."""
        ws = self.config.workspace
        if ws is None or self._fk is None:
            return v
        dt = self.dt
        allowed = box_distance(self._fk(q), self._box_low, self._box_high)
        allowed = 0.0 if not math.isfinite(allowed) else allowed

        def ok(vel: np.ndarray) -> bool:
            return box_distance(self._fk(q + vel * dt), self._box_low, self._box_high) <= allowed

        if ok(v):
            return v
        labels.setdefault(Reason.WORKSPACE_LIMIT, [])
        # The braking step lies in the allowed interval (both are convex and contain it), so every
        # point between it and v does too.
        base = np.clip(self._braking_velocity(), lo, hi)
        if not ok(base):
            held = np.zeros(self.n)
            lim = self.limits
            moving = np.abs(self._ref_v) > lim.acceleration * dt * (1.0 + _EPS)
            if moving.any():
                labels.setdefault(Reason.RATE_LIMIT_INFEASIBLE, []).extend(int(i) for i in np.flatnonzero(moving))
            return held
        good, bad = 0.0, 1.0
        for _ in range(ws.search_steps):
            mid = 0.5 * (good + bad)
            if ok(base + mid * (v - base)):
                good = mid
            else:
                bad = mid
        return base + good * (v - base)

    def _label_interventions(self, labels: dict[Reason, list[int]]) -> list[Intervention]:
        out = []
        for reason, joints in labels.items():
            joints_t = tuple(sorted(set(joints)))
            names = [self.limits.names[i] for i in joints_t]
            text = {
                Reason.POSITION_LIMIT: "target beyond the position limits",
                Reason.VELOCITY_LIMIT: "speed limited",
                Reason.ACCELERATION_LIMIT: "acceleration limited",
                Reason.BRAKING: "slowed to stop before the position limits",
                Reason.EFFORT_LIMIT: "effort limited",
                Reason.EFFORT_RATE_LIMIT: "effort rate limited",
                Reason.WORKSPACE_LIMIT: "step shortened to keep the end effector in the workspace",
                Reason.RATE_LIMIT_INFEASIBLE: "the measured state allows no command within the rate limits; "
                                              "hard limits kept",
            }.get(reason, reason.value)
            out.append(Intervention(reason, f"{text}: {names}" if names else text, joints_t))
        return out

    # -- bookkeeping -------------------------------------------------------------------------------

    def _finish(self, now: float, command: np.ndarray | None, fallback: bool, interventions: list[Intervention],
                requested: np.ndarray | None) -> ShieldOutput:
        cost = float(len({i.reason for i in interventions}))
        if command is not None and requested is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                delta = np.abs(command - requested) / self._unit
            cost += float(np.sum(np.minimum(np.nan_to_num(delta, nan=_COST_CAP, posinf=_COST_CAP), _COST_CAP)))
        applied: np.ndarray | None = None
        if self.config.normalized_actions and command is not None and requested is not None:
            applied = np.clip((command - self._action_base) / self._scale, -1.0, 1.0)
        output = ShieldOutput(command=None if command is None else command.copy(), interface=self.interface,
                              fallback=fallback, estop=self.estop_latched, interventions=tuple(interventions),
                              cost=cost, requested=None if requested is None else requested.copy(),
                              applied_action=applied, stamp=now)
        self.steps += 1
        self.fallback_steps += int(fallback)
        for reason in output.reasons:
            self.counts[reason] += 1
        for item in interventions:
            self.events.append((now, item))
        self.last_output = output
        return output
