"""The safety shield core: ROS-free and simulator-free (a node wraps it; see ``shield.py``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from drl_ros.core.config_loading import load_config

from drl_ros.core.shield.config import (
    FAULT_REASONS,
    ActionScalingConfig,
    OrientationConfig,
    Reason,
    ShieldConfig,
    WatchdogConfig,
    WorkspaceConfig,
)
from drl_ros.core.shield.kinematics import SerialChain
from drl_ros.core.shield.limits import (
    JointLimits,
    JointLimitsOverride,
    LimitsError,
    UrdfJoint,
    parse_urdf_joints,
    tighten_limits,
    urdf_joint_limits,
)
from drl_ros.core.shield.shield import (
    Intervention,
    ResetResult,
    RobotState,
    SafetyShield,
    ShieldOutput,
    box_distance,
    roll_pitch,
    stopping_velocity_bounds,
)

__all__ = [
    "FAULT_REASONS",
    "ActionScalingConfig",
    "Intervention",
    "JointLimits",
    "JointLimitsOverride",
    "LimitsError",
    "OrientationConfig",
    "Reason",
    "ResetResult",
    "RobotState",
    "SafetyShield",
    "SerialChain",
    "ShieldConfig",
    "ShieldOutput",
    "UrdfJoint",
    "WatchdogConfig",
    "WorkspaceConfig",
    "box_distance",
    "load_shield_config",
    "parse_urdf_joints",
    "roll_pitch",
    "stopping_velocity_bounds",
    "tighten_limits",
    "urdf_joint_limits",
]


def load_shield_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> ShieldConfig:
    """Read a :class:`ShieldConfig` YAML file strictly (errors name the file and the field)."""
    return load_config(ShieldConfig, path, overrides=overrides)
