"""The ROS side of the safety shield: its parameters, its input messages as core types, its
diagnostics. The node (:mod:`drl_ros.nodes.safety_shield`) stays a thin loop around these and
:class:`drl_ros.core.shield.SafetyShield`.

Parameters: every field of :class:`~drl_ros.core.shield.ShieldConfig` is a read-only parameter
of the same dotted name (``watchdog.action_timeout``, ``default_limits.velocity``,
``limits.<joint>.velocity``, ...), so a parameter YAML has the shape of
``config/shield/*.yaml`` under ``ros__parameters``. An optional section (``workspace``,
``orientation``) is enabled by giving any of its parameters. Values are read back through the
same strict loader as the YAML files, so a wrong type names the parameter.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from drl_ros.core.config_loading import config_to_dict, field_docs, load_config
from drl_ros.core.shield import JointLimits, JointLimitsOverride, RobotState, ShieldConfig, parse_urdf_joints

__all__ = [
    "ACTION_MODE_ACCELERATION",
    "action_space_limits",
    "declare_shield_config",
    "diagnostic_status",
    "robot_state",
]

ACTION_MODE_ACCELERATION = 1e12
"""Action mode treats each action dimension as a velocity-like command (a displacement per
step) with no rate limit: a finite acceleration limit the core requires, too large to bind."""


def _is_optional(tp: Any) -> tuple[bool, Any]:
    """``(True, X)`` for ``X | None``, else ``(False, tp)``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0] if len(rest) == 1 else tp  # a wider union: left to the loader
    return False, tp


def _ros_value(value: Any) -> Any:
    """A default as a ROS parameter value (enums by value, lists of enums too)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_ros_value(v) for v in value]
    return value


def _declare(node: Node, name: str, default: Any, description: str) -> Any:
    """Declare one read-only, dynamically typed parameter; its value (None when not set)."""
    descriptor = ParameterDescriptor(name=name, description=description, read_only=True, dynamic_typing=True)
    value = node.declare_parameter(name, None if default is None else _ros_value(default), descriptor).value
    if hasattr(value, "tolist"):
        value = value.tolist()
    elif isinstance(value, tuple):
        value = list(value)
    return value


def _declare_fields(node: Node, cls: type, prefix: str, defaults: dict[str, Any], *,
                    all_optional: bool = False) -> dict[str, Any]:
    """Declare ``cls``'s fields under ``prefix``; the values that are set, as a nested mapping.

    ``defaults``: values that replace the dataclass's defaults (from a shield YAML file).
    ``all_optional``: declare every field without a value (an optional section is enabled by
    setting any of its parameters; the dataclass fills in its own defaults)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        optional, tp = _is_optional(hints[f.name])
        nested = tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None
        given = defaults.get(f.name)
        if nested is not None:
            # A section the file sets is declared with its values; otherwise optional as before.
            sub = _declare_fields(node, nested, name + ".", given or {},
                                  all_optional=(all_optional or optional) and not given)
            if sub or not (optional or all_optional):
                values[f.name] = sub
            continue
        if typing.get_origin(tp) is dict:
            continue  # per-joint limits: declared once the joints are known
        if f.name in defaults:
            default = given
        elif all_optional or f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            default = None
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory()  # type: ignore[misc]
        if default is None or (isinstance(default, list) and not default):
            default = None  # an empty or missing value carries no type: declared unset
        value = _declare(node, name, default, docs.get(f.name, ""))
        if value is None and typing.get_origin(tp) is list and name in getattr(node, "_parameter_overrides", {}):
            value = []  # given, but typeless: how ROS passes an empty list (``latch_on:=[]``)
        if value is None:
            if all_optional:
                continue
            if f.name in defaults or f.default is not dataclasses.MISSING and f.default is None:
                values[f.name] = None
            elif f.default_factory is not dataclasses.MISSING and not f.default_factory():
                values[f.name] = f.default_factory()  # type: ignore[misc]
            continue
        if f.name == "urdf" and value == "":
            value = None  # an empty string is how a launch file or YAML says "no URDF"
        values[f.name] = value
    return values


def declare_shield_config(node: Node, urdf_dir: str | Callable[[], str] = "",
                          defaults: ShieldConfig | None = None) -> tuple[ShieldConfig, str | None]:
    """Declare the shield's parameters on ``node`` and return the config they hold, and the URDF
    path they name (resolved against ``urdf_dir``, or the directory it returns, when relative;
    None: no URDF). ``defaults`` (a shield YAML file's config) replaces the dataclass defaults;
    parameters set on the node override it field by field.

    Raises:
        drl_ros.core.config_loading.ConfigError: a parameter has the wrong type or an invalid value.
        drl_ros.core.shield.LimitsError: the URDF cannot be read or names no such joints.
    """
    file_values = config_to_dict(defaults) if defaults is not None else {}
    values = _declare_fields(node, ShieldConfig, "", file_values)
    urdf = values.get("urdf")
    path: str | None = None
    if urdf:
        base = urdf_dir() if callable(urdf_dir) and not urdf.startswith("/") else urdf_dir
        path = urdf if urdf.startswith("/") or not base else os.path.join(str(base), urdf)
        joints = values.get("joints") or [j.name for j in parse_urdf_joints(path) if j.movable]
        docs = field_docs(JointLimitsOverride)
        per_joint: dict[str, dict[str, Any]] = {}
        file_limits = file_values.get("limits") or {}
        for joint in joints:
            for f in dataclasses.fields(JointLimitsOverride):
                value = _declare(node, f"limits.{joint}.{f.name}", (file_limits.get(joint) or {}).get(f.name),
                                 f"{joint}: {docs.get(f.name, '')}")
                if value is not None:
                    per_joint.setdefault(joint, {})[f.name] = value
        values["limits"] = per_joint
    config = load_config(ShieldConfig, values, source_name=f"{node.get_fully_qualified_name()} parameters")
    return config, path


def action_space_limits(low: Sequence[float], high: Sequence[float]) -> JointLimits:
    """Limits of action mode: one velocity-like "joint" per action dimension, bounded by the
    action bounds, which must be symmetric about zero (zero is the stop command).

    Raises:
        ValueError: the bounds are empty, of different lengths, not finite, or not symmetric.
    """
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    if lo.shape != hi.shape or lo.ndim != 1 or lo.size == 0:
        raise ValueError("action_low and action_high need the same, non-zero length")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > 0.0)):
        raise ValueError("action bounds must be finite with action_high > 0")
    if not np.allclose(lo, -hi):
        raise ValueError(f"action mode needs bounds symmetric about zero (zero is the stop command); got "
                         f"low {lo.tolist()}, high {hi.tolist()}")
    return JointLimits.create([f"action_{i}" for i in range(lo.size)], velocity=hi,
                              acceleration=ACTION_MODE_ACCELERATION)


def robot_state(joints: Sequence[str], names: Sequence[str], position: Any, velocity: Any, effort: Any,
                orientation: Any = None) -> tuple[RobotState, str | None]:
    """A sensor_msgs/JointState's fields (``names``, ``position``, ``velocity``, ``effort``) as a
    :class:`RobotState` in the shield's joint order, and why the message is unusable (None if it
    is). An unusable message becomes a state of the wrong shape, which the core rejects as
    ``invalid_state`` (a fallback, never a guess). Values are not checked here: NaN and inf pass
    through to the core, which rejects them explicitly.

    Velocity and effort are optional in JointState (empty arrays); other lengths must match
    ``names``. Joints the shield does not command are ignored.
    """
    invalid = RobotState(positions=np.zeros(0))
    names = list(names)
    n = len(names)
    if len(set(names)) != n:
        return invalid, "joint_states names a joint twice"
    index = {name: i for i, name in enumerate(names)}
    missing = [j for j in joints if j not in index]
    if missing:
        return invalid, f"joint_states lacks joints {missing[:8]}"
    position = np.asarray(position, dtype=np.float64)
    velocity = np.asarray(velocity, dtype=np.float64)
    effort = np.asarray(effort, dtype=np.float64)
    if position.shape != (n,):
        return invalid, f"joint_states has {position.size} positions for {n} names"
    for label, values in (("velocities", velocity), ("efforts", effort)):
        if values.size not in (0, n):
            return invalid, f"joint_states has {values.size} {label} for {n} names"
    rows = [index[j] for j in joints]
    return RobotState(positions=position[rows], velocities=velocity[rows] if velocity.size else None,
                      efforts=effort[rows] if effort.size else None, orientation=orientation), None


def diagnostic_status(name: str, hardware_id: str, *, active: bool, latched: dict[str, str], steps: int,
                      window_steps: int, window_interventions: int, window_fallbacks: int,
                      step_latency: Sequence[float], action_latency: Sequence[float],
                      counts: dict[str, int]) -> DiagnosticStatus:
    """The shield's diagnostics for one period: OK while commands pass, WARN while it falls back
    or intervenes, ERROR while the e-stop is latched.

    Latencies are seconds: ``step_latency`` the time of each :meth:`SafetyShield.step`,
    ``action_latency`` from receiving an action to publishing the command that answers it.
    """
    def rate(k: int) -> float:
        return k / window_steps if window_steps else math.nan

    def stats(values: Sequence[float]) -> tuple[str, str]:
        if not values:
            return "nan", "nan"
        return f"{1e3 * float(np.mean(values)):.3f}", f"{1e3 * float(np.max(values)):.3f}"

    if latched:
        level, message = DiagnosticStatus.ERROR, "e-stop latched: " + ", ".join(latched)
    elif not active:
        level, message = DiagnosticStatus.WARN, "inactive: fallback output"
    elif window_steps and window_fallbacks:
        level, message = DiagnosticStatus.WARN, f"fallback on {window_fallbacks} of {window_steps} steps"
    elif window_interventions:
        level, message = DiagnosticStatus.OK, f"commands corrected on {window_interventions} of {window_steps} steps"
    else:
        level, message = DiagnosticStatus.OK, "commands pass"
    step_mean, step_max = stats(step_latency)
    action_mean, action_max = stats(action_latency)
    values = {
        "active": str(active).lower(),
        "estop_latched": str(bool(latched)).lower(),
        "latched_causes": "; ".join(f"{k}: {v}" for k, v in latched.items()),
        "steps": str(steps),
        "window_steps": str(window_steps),
        "intervention_rate": f"{rate(window_interventions):.4f}",
        "fallback_rate": f"{rate(window_fallbacks):.4f}",
        "step_latency_mean_ms": step_mean,
        "step_latency_max_ms": step_max,
        "action_to_command_latency_mean_ms": action_mean,
        "action_to_command_latency_max_ms": action_max,
    }
    values.update({f"count.{reason}": str(count) for reason, count in sorted(counts.items())})
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
