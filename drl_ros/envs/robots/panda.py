"""Franka Emika Panda 7-DoF arm with its parallel gripper, from ``pybullet_data/franka_panda``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from gymnasium import spaces

from drl_ros.envs.robots.base import Robot, read_joint_limits
from drl_ros.envs.sim import PyBulletSim, pybullet

__all__ = ["PANDA_DOWN_ORIENTATION", "PANDA_REST_POSE", "Panda", "PandaControl"]

PandaControl = Literal["ee_delta", "joint_delta"]

# Rest pose of panda-gym: the grasp point at about (0.31, 0.0, 0.49) m, fingers pointing down,
# well inside every joint range.
PANDA_REST_POSE: tuple[float, ...] = (0.0, 0.41, 0.0, -1.85, 0.0, 2.26, 0.79)

# Gripper pointing straight down (hand z axis along world -z), quaternion (x, y, z, w): push and
# pick-and-place need the fingers vertical, and holding it makes the 3-D action well posed.
PANDA_DOWN_ORIENTATION: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)

MAX_FINGER_WIDTH = 0.08  # metres between the fingers when fully open (2 x 0.04 m joint range)


class Panda(Robot):
    """Panda with a fixed base, position-controlled, with an optional 1-D gripper action.

    Observation (:meth:`get_obs`), float64, shape (15,):
        ``[0:7]`` arm joint positions (rad), ``[7:14]`` arm joint velocities (rad/s),
        ``[14]`` finger opening (m, 0 closed .. 0.08 open).

    Actions are normalized to [-1, 1]; the arm part is
        * ``"ee_delta"``: (3,) grasp-point displacement of up to ``max_ee_step`` metres per axis,
          solved by null-space IK with the gripper held pointing down;
        * ``"joint_delta"``: (7,) joint increments of up to ``max_joint_step`` radians;
    followed, unless ``block_gripper``, by one gripper value: the *absolute* finger opening,
    -1 closed .. +1 fully open (absolute rather than incremental so that one action means one
    grasp state, which is easier to learn and to script). With ``block_gripper`` the fingers are
    held closed (reach, push) and the action has no gripper entry.

    Args:
        sim: the simulator (injected).
        control: ``"ee_delta"`` or ``"joint_delta"``.
        block_gripper: hold the fingers closed and leave the gripper out of the action.
        max_ee_step, max_joint_step: metres / radians per control step for a unit action.
        base_position: (3,) world position of the fixed base.
        rest_pose: (7,) arm joint positions for :meth:`reset` and the IK null space.
    """

    ee_link: int = 11  # panda_grasptarget: the point between the finger tips.
    hand_link: int = 8
    finger_joints: tuple[int, int] = (9, 10)
    n_joints: int = 7

    def __init__(
        self,
        sim: PyBulletSim,
        control: PandaControl = "ee_delta",
        block_gripper: bool = False,
        max_ee_step: float = 0.05,
        max_joint_step: float = 0.05,
        base_position: Sequence[float] = (0.0, 0.0, 0.0),
        rest_pose: Sequence[float] = PANDA_REST_POSE,
    ) -> None:
        super().__init__(sim)
        if control not in ("ee_delta", "joint_delta"):
            raise ValueError(f"control must be 'ee_delta' or 'joint_delta', got {control!r}")
        if len(rest_pose) != self.n_joints:
            raise ValueError(f"rest_pose needs {self.n_joints} values, got {len(rest_pose)}")
        self.control: PandaControl = control
        self.block_gripper = bool(block_gripper)
        self.max_ee_step = float(max_ee_step)
        self.max_joint_step = float(max_joint_step)
        self.base_position = np.asarray(base_position, dtype=np.float64)
        self.body = sim.load_urdf(
            "franka_panda/panda.urdf", base_position=base_position, use_fixed_base=True
        )
        client = sim.client
        self.joint_indices: list[int] = list(range(self.n_joints))
        self.joint_lower, self.joint_upper, self.nominal_forces, self.joint_max_velocities = read_joint_limits(
            sim, self.body, self.joint_indices)
        for finger in self.finger_joints:
            # Rubber-like finger pads: without friction a grasped cube slides out.
            client.changeDynamics(self.body, finger, lateralFriction=1.0, spinningFriction=0.001)
        self.finger_force = 20.0  # N, the URDF effort limit of each finger joint
        self.rest_pose = np.clip(np.asarray(rest_pose, dtype=np.float64),
                                 self.joint_lower, self.joint_upper)
        # IK null-space arguments cover every movable joint: 7 arm + 2 fingers.
        self._ik_lower = [*self.joint_lower.tolist(), 0.0, 0.0]
        self._ik_upper = [*self.joint_upper.tolist(), 0.04, 0.04]
        self._ik_ranges = [u - lo for lo, u in zip(self._ik_lower, self._ik_upper, strict=True)]
        self._ik_rest = [*self.rest_pose.tolist(), 0.0, 0.0]
        self._forces = self.nominal_forces.tolist()
        self._finger_target = 0.0 if self.block_gripper else MAX_FINGER_WIDTH
        arm_dim = 3 if control == "ee_delta" else self.n_joints
        self._action_space = spaces.Box(
            -1.0, 1.0, shape=(arm_dim + (0 if self.block_gripper else 1),), dtype=np.float32
        )

    obs_terms: tuple[tuple[str, int], ...] = (
        ("joint_positions", 7), ("joint_velocities", 7), ("finger_width", 1),
    )

    @property
    def action_space(self) -> spaces.Box:
        return self._action_space

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint limits, URDF velocity limits, finger opening [0, 0.08]; each shape (15,)."""
        low = np.concatenate([self.joint_lower, -self.joint_max_velocities, [0.0]])
        high = np.concatenate([self.joint_upper, self.joint_max_velocities, [MAX_FINGER_WIDTH]])
        return low, high

    @property
    def ee_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """A cube of half-size 1.2 m around the base: the stretched arm and hand are ~1.19 m."""
        return self.base_position - 1.2, self.base_position + 1.2

    def joint_map(self) -> dict[str, object]:
        """Joint names, control mode and action units for the exported policy contract."""
        names = [self.sim.client.getJointInfo(self.body, j)[1].decode() for j in self.joint_indices]
        if self.control == "ee_delta":
            terms, step, unit = ["ee_dx", "ee_dy", "ee_dz"], self.max_ee_step, "m"
        else:
            terms, step, unit = list(names), self.max_joint_step, "rad"
        if not self.block_gripper:
            terms = [*terms, "gripper_opening"]
        return {"joints": names, "control": self.control, "action_terms": terms,
                "action_step": step, "action_step_unit": unit,
                "gripper": None if self.block_gripper else
                {"joints": ["panda_finger_joint1", "panda_finger_joint2"],
                 "action": "absolute opening, -1 closed .. +1 open", "max_width_m": MAX_FINGER_WIDTH}}

    def neutral_action(self) -> np.ndarray:
        """The action that holds the current pose (a zero move; the gripper open)."""
        action = np.zeros(self._action_space.shape, dtype=np.float32)
        if not self.block_gripper:
            action[-1] = 1.0
        return action

    def reset(self) -> None:
        """Rest pose at zero velocity, fingers open (closed if blocked), motors holding it."""
        client = self.sim.client
        for joint, position in zip(self.joint_indices, self.rest_pose, strict=True):
            client.resetJointState(self.body, joint, float(position), 0.0)
        self._finger_target = 0.0 if self.block_gripper else MAX_FINGER_WIDTH
        for finger in self.finger_joints:
            client.resetJointState(self.body, finger, self._finger_target / 2, 0.0)
        self.command_joint_positions(self.rest_pose)
        self.command_fingers(self._finger_target)

    def set_joint_positions(self, positions: np.ndarray) -> None:
        """Teleport the arm to ``positions`` (7,) at rest and hold it there (initial-state
        randomization and scripted primitives use this)."""
        positions = np.clip(np.asarray(positions, dtype=np.float64), self.joint_lower, self.joint_upper)
        for joint, position in zip(self.joint_indices, positions, strict=True):
            self.sim.client.resetJointState(self.body, joint, float(position), 0.0)
        self.command_joint_positions(positions)

    def set_motor_strength(self, scale: np.ndarray) -> None:
        """Scale each arm motor's force limit by ``scale`` (7,) (domain randomization)."""
        self._forces = (self.nominal_forces * np.asarray(scale, dtype=np.float64)).tolist()

    def set_action(self, action: np.ndarray) -> None:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if action.shape != self._action_space.shape:
            raise ValueError(f"expected action shape {self._action_space.shape}, got {action.shape}")
        arm = action[:3] if self.control == "ee_delta" else action[: self.n_joints]
        if self.control == "ee_delta":
            target = self.inverse_kinematics(self.ee_position() + self.max_ee_step * arm)
        else:
            target = self.joint_positions() + self.max_joint_step * arm
        self.command_joint_positions(np.clip(target, self.joint_lower, self.joint_upper))
        if not self.block_gripper:
            self.command_fingers((action[-1] + 1.0) / 2.0 * MAX_FINGER_WIDTH)

    def inverse_kinematics(
        self, position: np.ndarray, orientation: Sequence[float] = PANDA_DOWN_ORIENTATION
    ) -> np.ndarray:
        """Arm joint positions (7,) putting the grasp point at ``position`` (3,) with the hand at
        ``orientation``, seeded from the current joint state."""
        solution = self.sim.client.calculateInverseKinematics(
            self.body, self.ee_link, targetPosition=[float(x) for x in position],
            targetOrientation=list(orientation), lowerLimits=self._ik_lower,
            upperLimits=self._ik_upper, jointRanges=self._ik_ranges, restPoses=self._ik_rest,
            maxNumIterations=10, residualThreshold=1e-3,
        )
        return np.asarray(solution[: self.n_joints], dtype=np.float64)

    def joint_positions(self) -> np.ndarray:
        states = self.sim.client.getJointStates(self.body, self.joint_indices)
        return np.array([s[0] for s in states], dtype=np.float64)

    def finger_width(self) -> float:
        """Distance between the fingers in metres (sum of both prismatic joints)."""
        states = self.sim.client.getJointStates(self.body, list(self.finger_joints))
        return float(states[0][0] + states[1][0])

    def get_obs(self) -> np.ndarray:
        states = self.sim.client.getJointStates(self.body, [*self.joint_indices, *self.finger_joints])
        arm = states[: self.n_joints]
        width = states[-2][0] + states[-1][0]
        return np.array([s[0] for s in arm] + [s[1] for s in arm] + [width], dtype=np.float64)

    def ee_position(self) -> np.ndarray:
        """World position of the grasp point between the finger tips, shape (3,)."""
        state = self.sim.client.getLinkState(self.body, self.ee_link, computeForwardKinematics=True)
        return np.array(state[4], dtype=np.float64)

    def command_joint_positions(self, targets: np.ndarray) -> None:
        self.sim.client.setJointMotorControlArray(
            self.body, self.joint_indices, pybullet.POSITION_CONTROL,
            targetPositions=np.asarray(targets, dtype=np.float64).tolist(), forces=self._forces,
        )

    def command_fingers(self, width: float) -> None:
        """Drive both fingers toward a total opening of ``width`` metres (clipped to 0..0.08)."""
        self._finger_target = float(np.clip(width, 0.0, MAX_FINGER_WIDTH))
        self.sim.client.setJointMotorControlArray(
            self.body, list(self.finger_joints), pybullet.POSITION_CONTROL,
            targetPositions=[self._finger_target / 2] * 2, forces=[self.finger_force] * 2,
        )
