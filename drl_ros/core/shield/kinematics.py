"""Forward kinematics of a URDF serial chain in plain numpy (no simulator, no ROS).

The shield takes any forward-kinematics callable ``q (n,) -> end-effector position (3,)``; this
module provides one built from the URDF the limits come from, so the workspace check needs
nothing but the robot description. Each joint contributes ``T_origin(xyz, rpy) · T_motion(q)``,
the URDF convention (the joint frame is the child link frame).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from drl_ros.core.shield.limits import LimitsError, UrdfJoint, parse_urdf_joints

__all__ = ["SerialChain", "rpy_matrix"]


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``, shape (3, 3)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation about the unit ``axis``, shape (3, 3)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return np.array([
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ])


class SerialChain:
    """The joints from ``base_link`` to ``tip_link`` of a URDF, as a kinematic chain.

    Args:
        joints: the chain's joints in order from base to tip (fixed joints included).
        joint_names: the names, in the order of the vectors :meth:`position` receives; every
            movable joint of the chain must be among them (other names are ignored, so the
            shield's full joint vector can be passed).
    """

    def __init__(self, joints: Sequence[UrdfJoint], joint_names: Sequence[str] | None = None) -> None:
        self.joints = list(joints)
        movable = [j.name for j in self.joints if j.movable]
        names = list(joint_names) if joint_names is not None else movable
        missing = [m for m in movable if m not in names]
        if missing:
            raise LimitsError(f"the chain's movable joints {missing} are not in the joint vector {names}")
        self.joint_names = names
        self._origins: list[np.ndarray] = []
        for j in self.joints:
            t = np.eye(4)
            t[:3, :3] = rpy_matrix(*j.origin_rpy)
            t[:3, 3] = j.origin_xyz
            self._origins.append(t)
        # Index into the input vector for each chain joint (-1: fixed, no motion).
        self._index = [names.index(j.name) if j.movable else -1 for j in self.joints]
        self._axes = [np.asarray(j.axis, dtype=np.float64) for j in self.joints]

    @classmethod
    def from_urdf(cls, path: str | os.PathLike[str], base_link: str, tip_link: str,
                  joint_names: Sequence[str] | None = None) -> "SerialChain":
        """The chain from ``base_link`` down to ``tip_link`` of the URDF at ``path``.

        Raises:
            LimitsError: a link is unknown or ``tip_link`` does not descend from ``base_link``.
        """
        joints = parse_urdf_joints(path)
        by_child = {j.child: j for j in joints}
        links = {j.parent for j in joints} | {j.child for j in joints}
        for link in (base_link, tip_link):
            if link not in links:
                raise LimitsError(f"{path}: no link named {link!r}")
        chain: list[UrdfJoint] = []
        link = tip_link
        while link != base_link:
            joint = by_child.get(link)
            if joint is None:
                raise LimitsError(f"{path}: link {tip_link!r} does not descend from {base_link!r}")
            chain.append(joint)
            link = joint.parent
            if len(chain) > len(joints):  # a cycle: not a tree
                raise LimitsError(f"{path}: the joints form a cycle")
        chain.reverse()
        return cls(chain, joint_names)

    def pose(self, q: np.ndarray) -> np.ndarray:
        """Homogeneous transform (4, 4) of the tip link in the base link frame."""
        q = np.asarray(q, dtype=np.float64)
        t = np.eye(4)
        for origin, index, axis, joint in zip(self._origins, self._index, self._axes, self.joints):
            t = t @ origin
            if index < 0:
                continue
            value = float(q[index])
            if joint.type == "prismatic":
                t[:3, 3] += t[:3, :3] @ (axis * value)
            else:
                t[:3, :3] = t[:3, :3] @ _axis_angle(axis, value)
        return t

    def position(self, q: np.ndarray) -> np.ndarray:
        """Tip link origin (3,) in the base link frame: the callable the shield's workspace
        check takes."""
        return self.pose(q)[:3, 3].copy()

    __call__ = position
