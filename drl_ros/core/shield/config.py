"""Configuration of the safety shield: one dataclass tree, loaded from YAML with
:func:`drl_ros.core.config_loading.load_config` (the same fields become the node's read-only
parameters)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Literal

from drl_ros.core.shield.limits import JointLimitsOverride

__all__ = [
    "FAULT_REASONS",
    "ActionScalingConfig",
    "OrientationConfig",
    "Reason",
    "ShieldConfig",
    "WatchdogConfig",
    "WorkspaceConfig",
]


class Reason(str, enum.Enum):
    """Why the shield intervened. The values are the strings published in shield status."""

    # -- the command is replaced by the safe fallback ----------------------------------------
    INACTIVE = "inactive"
    """The shield (node) is not active: lifecycle inactive."""
    ESTOP = "estop"
    """The e-stop is latched."""
    ESTOP_REQUEST = "estop_request"
    """Someone requested the e-stop (the cause of an ESTOP latch)."""
    OBSERVATION_TIMEOUT = "observation_timeout"
    """No observation yet, or the last one is older than the watchdog timeout."""
    ACTION_TIMEOUT = "action_timeout"
    """No policy action yet, or the last one is older than the watchdog timeout."""
    INVALID_STATE = "invalid_state"
    """The measured state has the wrong dimensions or type (or a non-unit quaternion)."""
    NON_FINITE_STATE = "non_finite_state"
    """The measured state holds NaN or infinity."""
    INVALID_ACTION = "invalid_action"
    """The action has the wrong dimensions or type."""
    NON_FINITE_ACTION = "non_finite_action"
    """The action holds NaN or infinity (clipping would keep a NaN)."""
    ORIENTATION_LIMIT = "orientation_limit"
    """Roll or pitch of the base (IMU) beyond its bound: a legged robot is tipping over."""
    STATE_OUT_OF_LIMITS = "state_out_of_limits"
    """A measured joint position (or speed) is beyond its limit by more than the tolerance."""
    TRACKING_ERROR = "tracking_error"
    """A measured position is farther than ``max_tracking_error`` from the commanded reference."""
    WORKSPACE_EXIT = "workspace_exit"
    """The measured end effector is outside the workspace box by more than the tolerance."""
    # -- the command is corrected ---------------------------------------------------------------
    ACTION_CLIPPED = "action_clipped"
    """A normalized action outside [-1, 1] was clipped."""
    POSITION_LIMIT = "position_limit"
    VELOCITY_LIMIT = "velocity_limit"
    ACCELERATION_LIMIT = "acceleration_limit"
    BRAKING = "braking"
    """Slowed so that the stopping distance at the allowed deceleration stays inside the limits."""
    EFFORT_LIMIT = "effort_limit"
    EFFORT_RATE_LIMIT = "effort_rate_limit"
    WORKSPACE_LIMIT = "workspace_limit"
    """The step was shortened (or the command held) to keep the end effector in the box."""
    RATE_LIMIT_INFEASIBLE = "rate_limit_infeasible"
    """The measured state left no command inside both the hard limits and the rate limits;
    the hard limits (position, velocity, effort, workspace) won."""


# Faults are evaluated on the latest inputs: they can latch the e-stop and be re-checked on reset.
FAULT_REASONS: frozenset[Reason] = frozenset({
    Reason.OBSERVATION_TIMEOUT, Reason.ACTION_TIMEOUT, Reason.INVALID_STATE, Reason.NON_FINITE_STATE,
    Reason.INVALID_ACTION, Reason.NON_FINITE_ACTION, Reason.ORIENTATION_LIMIT, Reason.STATE_OUT_OF_LIMITS,
    Reason.TRACKING_ERROR, Reason.WORKSPACE_EXIT,
})


@dataclass
class ActionScalingConfig:
    """How a normalized policy action in [-1, 1] becomes a command (``normalized_actions``)."""

    mode: Literal["absolute", "delta"] = "absolute"
    """``absolute``: command = offset + scale · a. ``delta``: command = reference + scale · a,
    where the reference is the last command (position / velocity / effort)."""
    scale: list[float] | None = None
    """Per joint. None: absolute maps [-1, 1] onto the limits (position range, ±velocity,
    ±effort); delta allows one control period's worth (velocity·dt, acceleration·dt,
    effort_rate·dt)."""
    offset: list[float] | None = None
    """Per joint, absolute mode only. None: the middle of the position range, else 0."""


@dataclass
class WatchdogConfig:
    """Freshness of the inputs; stale inputs give the safe fallback, never the last action."""

    observation_timeout: float = 0.1
    """Seconds an observation stays fresh (stale strictly after)."""
    action_timeout: float = 0.1
    """Seconds a policy action stays fresh (stale strictly after)."""

    def __post_init__(self) -> None:
        if not (self.observation_timeout > 0.0 and self.action_timeout > 0.0):
            raise ValueError("watchdog timeouts must be positive")


@dataclass
class WorkspaceConfig:
    """End-effector box for arms, in the ``base_link`` frame."""

    ee_link: str
    """URDF link whose origin must stay in the box."""
    low: list[float]
    """(3,) lower corner, m."""
    high: list[float]
    """(3,) upper corner, m."""
    base_link: str | None = None
    """URDF link the box is expressed in; None: the chain's root (the URDF's first joint parent)."""
    tolerance: float = 0.02
    """A measured end effector this far (m) outside the box is a WORKSPACE_EXIT fault."""
    search_steps: int = 12
    """Bisection steps that shorten a command to the box boundary."""

    def __post_init__(self) -> None:
        if len(self.low) != 3 or len(self.high) != 3:
            raise ValueError("workspace low and high need 3 values each")
        if any(not (lo <= hi) for lo, hi in zip(self.low, self.high)):
            raise ValueError("workspace low must be <= high on every axis")
        if self.tolerance < 0.0 or self.search_steps < 1:
            raise ValueError("workspace tolerance must be >= 0 and search_steps >= 1")


@dataclass
class OrientationConfig:
    """Roll / pitch bounds of a legged robot's base, from the IMU quaternion in the state."""

    max_roll: float = math.radians(30.0)
    """|roll| above this (rad) is an ORIENTATION_LIMIT fault."""
    max_pitch: float = math.radians(30.0)
    """|pitch| above this (rad) is an ORIENTATION_LIMIT fault."""

    def __post_init__(self) -> None:
        if not (0.0 < self.max_roll <= math.pi and 0.0 < self.max_pitch <= math.pi / 2):
            raise ValueError("max_roll must be in (0, pi] and max_pitch in (0, pi/2]")


@dataclass
class ShieldConfig:
    """The safety shield: limits, interface, watchdog, workspace, orientation and e-stop."""

    urdf: str | None = None
    """Path of the robot's URDF; the limits are read from it. None: limits are passed in code."""
    joints: list[str] | None = None
    """Commanded joints, in command order. None: every movable URDF joint, in file order."""
    interface: Literal["position", "velocity", "effort"] = "position"
    """Command interface of the controller behind the shield (ros2_control forward command
    controllers: position, velocity or effort)."""
    normalized_actions: bool = False
    """Actions arrive normalized in [-1, 1] (a policy's raw output) and are mapped with
    ``scaling``; False: they arrive in the interface's units."""
    scaling: ActionScalingConfig = field(default_factory=ActionScalingConfig)
    """Mapping of normalized actions."""
    control_period: float = 0.02
    """Seconds between commands: :meth:`SafetyShield.step` runs once per period, and the rate
    limits allow one period's change per command."""
    default_limits: JointLimitsOverride = field(default_factory=JointLimitsOverride)
    """Tightening applied to every joint (acceleration is needed for position and velocity
    interfaces: the URDF has none)."""
    limits: dict[str, JointLimitsOverride] = field(default_factory=dict)
    """Tightening per joint name, applied after ``default_limits``."""
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    """Input freshness."""
    workspace: WorkspaceConfig | None = None
    """End-effector box (arms); None disables it."""
    orientation: OrientationConfig | None = None
    """Roll / pitch bounds (legged robots); None disables them."""
    damping: list[float] = field(default_factory=lambda: [1.0])
    """Effort fallback gain Kd (N·m·s/rad): effort = -Kd · velocity. One value for every joint,
    or one per joint."""
    max_tracking_error: float | None = None
    """Position interface: a measured position farther than this from the last command is a
    TRACKING_ERROR fault. None disables the check."""
    state_position_tolerance: float = 0.05
    """A measured position beyond its limit by more than this is a STATE_OUT_OF_LIMITS fault."""
    state_velocity_tolerance: float = 0.5
    """A measured speed above (1 + this) × its limit is a STATE_OUT_OF_LIMITS fault."""
    latch_on: list[Reason] = field(default_factory=lambda: [Reason.ORIENTATION_LIMIT,
                                                             Reason.STATE_OUT_OF_LIMITS])
    """Faults that latch the e-stop (a reset is refused while the cause persists)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.control_period) and self.control_period > 0.0):
            raise ValueError(f"control_period must be positive, got {self.control_period}")
        if not self.damping or any(not (math.isfinite(d) and d >= 0.0) for d in self.damping):
            raise ValueError("damping gains must be finite and >= 0")
        if self.max_tracking_error is not None and not self.max_tracking_error > 0.0:
            raise ValueError("max_tracking_error must be positive")
        if self.state_position_tolerance < 0.0 or self.state_velocity_tolerance < 0.0:
            raise ValueError("state tolerances must be >= 0")
        bad = [r.value for r in self.latch_on if r not in FAULT_REASONS]
        if bad:
            raise ValueError(f"latch_on: {bad} cannot latch; choose among {sorted(r.value for r in FAULT_REASONS)}")
        if self.scaling.mode == "delta" and self.scaling.offset is not None:
            raise ValueError("scaling.offset applies to absolute mode only")
