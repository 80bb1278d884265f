"""Per-joint limits: read from a robot's URDF, tightened (never loosened) from the shield's YAML.

The URDF is parsed with :mod:`xml.etree.ElementTree` (no ROS, no simulator). A URDF states
position, velocity and effort limits; it has no acceleration limit, which is why the shield
config supplies one (``default_limits.acceleration`` or per joint): without it no stopping
distance exists and "brake before a limit" would be meaningless.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

__all__ = [
    "MOVABLE_JOINT_TYPES",
    "JointLimits",
    "JointLimitsOverride",
    "LimitsError",
    "UrdfJoint",
    "parse_urdf_joints",
    "tighten_limits",
    "urdf_joint_limits",
]

MOVABLE_JOINT_TYPES = ("revolute", "continuous", "prismatic")


class LimitsError(ValueError):
    """A URDF or a limits override is invalid, or an override would loosen a limit."""


@dataclass(frozen=True)
class UrdfJoint:
    """One ``<joint>`` of a URDF, with the parts the shield and forward kinematics need."""

    name: str
    type: str
    """``revolute``, ``continuous``, ``prismatic``, ``fixed`` (others are kept but not movable)."""
    parent: str
    child: str
    origin_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    origin_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Fixed-axis roll, pitch, yaw (rad): ``R = Rz(yaw) Ry(pitch) Rx(roll)``."""
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    """Unit axis in the joint frame (URDF default x)."""
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf

    @property
    def movable(self) -> bool:
        return self.type in MOVABLE_JOINT_TYPES


def _floats(text: str | None, default: tuple[float, ...], what: str) -> tuple[float, ...]:
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        raise LimitsError(f"{what}: expected numbers, got {text!r}") from None
    if len(values) != len(default):
        raise LimitsError(f"{what}: expected {len(default)} numbers, got {text!r}")
    return values


def _limit_attr(elem: ET.Element, name: str, what: str) -> float | None:
    text = elem.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise LimitsError(f"{what}: {name}={text!r} is not a number") from None
    if math.isnan(value):
        raise LimitsError(f"{what}: {name} is NaN")
    return value


def parse_urdf_joints(path: str | os.PathLike[str]) -> list[UrdfJoint]:
    """Every ``<joint>`` of the URDF at ``path``, in file order.

    Velocity and effort attributes that are missing or not positive mean "no limit" (``inf``):
    some URDFs write 0 there. Revolute and prismatic joints must have a ``<limit>`` with
    ``lower <= upper`` (the URDF spec requires it); continuous joints have no position limits.

    Raises:
        LimitsError: unreadable XML or an invalid joint; the message names the file and joint.
    """
    source = Path(path)
    try:
        root = ET.parse(source).getroot()
    except ET.ParseError as exc:
        raise LimitsError(f"{source}: invalid URDF XML: {exc}") from exc
    if root.tag != "robot":
        raise LimitsError(f"{source}: not a URDF (root element <{root.tag}>, expected <robot>)")
    joints: list[UrdfJoint] = []
    for elem in root.findall("joint"):
        name = elem.get("name")
        jtype = elem.get("type")
        what = f"{source}: joint {name!r}"
        if not name or not jtype:
            raise LimitsError(f"{what}: every joint needs a name and a type")
        parent, child = elem.find("parent"), elem.find("child")
        if parent is None or child is None or not parent.get("link") or not child.get("link"):
            raise LimitsError(f"{what}: missing <parent link=...> or <child link=...>")
        origin = elem.find("origin")
        xyz = _floats(origin.get("xyz") if origin is not None else None, (0.0, 0.0, 0.0), f"{what} origin xyz")
        rpy = _floats(origin.get("rpy") if origin is not None else None, (0.0, 0.0, 0.0), f"{what} origin rpy")
        axis_elem = elem.find("axis")
        axis = _floats(axis_elem.get("xyz") if axis_elem is not None else None, (1.0, 0.0, 0.0), f"{what} axis")
        norm = math.sqrt(sum(a * a for a in axis))
        if jtype in MOVABLE_JOINT_TYPES and not norm > 0.0:
            raise LimitsError(f"{what}: zero joint axis")
        if norm > 0.0:
            axis = tuple(a / norm for a in axis)
        lower, upper, velocity, effort = -math.inf, math.inf, math.inf, math.inf
        limit = elem.find("limit")
        if limit is not None:
            vel = _limit_attr(limit, "velocity", what)
            eff = _limit_attr(limit, "effort", what)
            velocity = vel if vel is not None and vel > 0.0 else math.inf
            effort = eff if eff is not None and eff > 0.0 else math.inf
            if jtype in ("revolute", "prismatic"):
                lo = _limit_attr(limit, "lower", what)
                hi = _limit_attr(limit, "upper", what)
                lower = 0.0 if lo is None else lo  # URDF defaults for lower/upper are 0
                upper = 0.0 if hi is None else hi
                if lower > upper:
                    raise LimitsError(f"{what}: lower limit {lower} exceeds upper limit {upper}")
        elif jtype in ("revolute", "prismatic"):
            raise LimitsError(f"{what}: a {jtype} joint needs a <limit> element")
        joints.append(UrdfJoint(name, jtype, parent.get("link", ""), child.get("link", ""),
                                (xyz[0], xyz[1], xyz[2]), (rpy[0], rpy[1], rpy[2]),
                                (axis[0], axis[1], axis[2]), lower, upper, velocity, effort))
    return joints


@dataclass(frozen=True)
class JointLimits:
    """Limits of ``n`` joints, one entry per joint in command order; ``inf`` means unlimited.

    All arrays are float64 of shape ``(n,)``.
    """

    names: tuple[str, ...]
    position_lower: np.ndarray
    """rad (revolute) or m (prismatic); ``-inf`` for continuous joints."""
    position_upper: np.ndarray
    velocity: np.ndarray
    """Maximum speed, rad/s or m/s, > 0."""
    acceleration: np.ndarray
    """Maximum acceleration and deceleration, rad/s² or m/s², > 0 (the URDF has none)."""
    effort: np.ndarray
    """Maximum effort, N·m or N, > 0."""
    effort_rate: np.ndarray
    """Maximum change of the effort command per second, N·m/s or N/s, > 0."""

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise LimitsError("joint limits need at least one joint")
        if len(set(self.names)) != n:
            raise LimitsError(f"duplicate joint names in {self.names}")
        for f in fields(self):
            if f.name == "names":
                continue
            value = np.array(getattr(self, f.name), dtype=np.float64)
            if value.shape != (n,):
                raise LimitsError(f"{f.name}: expected shape ({n},), got {value.shape}")
            if np.isnan(value).any():
                raise LimitsError(f"{f.name}: NaN limit")
            value.setflags(write=False)
            object.__setattr__(self, f.name, value)
        if np.any(self.position_lower > self.position_upper):
            bad = self.names[int(np.argmax(self.position_lower > self.position_upper))]
            raise LimitsError(f"joint {bad!r}: position_lower exceeds position_upper")
        for name in ("velocity", "acceleration", "effort", "effort_rate"):
            values = getattr(self, name)
            if np.any(values <= 0.0):
                bad = self.names[int(np.argmax(values <= 0.0))]
                raise LimitsError(f"joint {bad!r}: {name} limit must be positive, got {values[self.names.index(bad)]}")

    @property
    def n(self) -> int:
        return len(self.names)

    @classmethod
    def create(cls, names: Sequence[str], *, position_lower: Sequence[float] | float = -math.inf,
               position_upper: Sequence[float] | float = math.inf, velocity: Sequence[float] | float = math.inf,
               acceleration: Sequence[float] | float = math.inf, effort: Sequence[float] | float = math.inf,
               effort_rate: Sequence[float] | float = math.inf) -> "JointLimits":
        """Limits from scalars (broadcast to every joint) or per-joint sequences."""
        n = len(names)

        def arr(v: Sequence[float] | float) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()

        return cls(tuple(names), arr(position_lower), arr(position_upper), arr(velocity), arr(acceleration),
                   arr(effort), arr(effort_rate))

    def select(self, names: Sequence[str]) -> "JointLimits":
        """The limits of ``names``, in that order."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise LimitsError(f"unknown joints {missing}; known: {list(self.names)}")
        idx = [self.names.index(n) for n in names]
        return JointLimits(tuple(names), *(getattr(self, f.name)[idx] for f in fields(self) if f.name != "names"))


def urdf_joint_limits(path: str | os.PathLike[str], joints: Sequence[str] | None = None) -> JointLimits:
    """Limits of the movable joints of a URDF (all, in file order, or ``joints`` in that order).

    Acceleration and effort-rate limits are ``inf`` (a URDF has none): tighten them with
    :func:`tighten_limits`.
    """
    movable = {j.name: j for j in parse_urdf_joints(path) if j.movable}
    names = list(movable) if joints is None else list(joints)
    unknown = [n for n in names if n not in movable]
    if unknown:
        raise LimitsError(f"{path}: no movable joint named {unknown}; movable joints: {list(movable)}")
    if not names:
        raise LimitsError(f"{path}: the URDF has no movable joints")
    chosen = [movable[n] for n in names]
    return JointLimits.create(names, position_lower=[j.lower for j in chosen],
                              position_upper=[j.upper for j in chosen],
                              velocity=[j.velocity for j in chosen], effort=[j.effort for j in chosen])


@dataclass
class JointLimitsOverride:
    """Limits set in the shield's YAML. Each may only tighten what the URDF (or a broader
    override) allows; None keeps the limit as it is."""

    position_lower: float | None = None
    """Lowest position (rad or m); must be >= the URDF's lower limit."""
    position_upper: float | None = None
    """Highest position (rad or m); must be <= the URDF's upper limit."""
    velocity: float | None = None
    """Maximum speed (rad/s or m/s); must be <= the URDF's velocity limit."""
    acceleration: float | None = None
    """Maximum acceleration and braking deceleration (rad/s² or m/s²)."""
    effort: float | None = None
    """Maximum effort (N·m or N); must be <= the URDF's effort limit."""
    effort_rate: float | None = None
    """Maximum change of the effort command per second (N·m/s or N/s)."""


_LOWER_BOUNDS = ("position_lower",)  # raising these tightens; every other field tightens by lowering


def tighten_limits(limits: JointLimits, default: JointLimitsOverride | None = None,
                   per_joint: Mapping[str, JointLimitsOverride] | None = None,
                   *, source: str = "shield config") -> JointLimits:
    """Apply ``default`` to every joint, then ``per_joint[name]``; refuse any loosening.

    Raises:
        LimitsError: an override names an unknown joint, is not finite where it must be, or
            would loosen a limit (the message names the joint, the field, both values and the
            source).
    """
    arrays = {f.name: np.array(getattr(limits, f.name), dtype=np.float64)
              for f in fields(limits) if f.name != "names"}
    per_joint = dict(per_joint or {})
    unknown = sorted(set(per_joint) - set(limits.names))
    if unknown:
        raise LimitsError(f"{source}: limits for unknown joints {unknown}; joints: {list(limits.names)}")
    for index, name in enumerate(limits.names):
        for label, override in (("default_limits", default), (f"limits.{name}", per_joint.get(name))):
            if override is None:
                continue
            for f in fields(override):
                value = getattr(override, f.name)
                if value is None:
                    continue
                value = float(value)
                current = float(arrays[f.name][index])
                if math.isnan(value):
                    raise LimitsError(f"{source}: {label}.{f.name} is NaN")
                if f.name in _LOWER_BOUNDS:
                    looser = value < current
                else:
                    looser = value > current
                if looser:
                    raise LimitsError(
                        f"{source}: {label}.{f.name}={value} would loosen joint {name!r}'s limit {current} "
                        f"(the YAML may only tighten the URDF's limits)")
                arrays[f.name][index] = value
    try:
        return JointLimits(limits.names, **arrays)
    except LimitsError as exc:
        raise LimitsError(f"{source}: {exc}") from exc

