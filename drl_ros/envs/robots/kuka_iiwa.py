"""KUKA LBR iiwa 7-DoF arm from ``pybullet_data/kuka_iiwa/model.urdf``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from gymnasium import spaces

from drl_ros.envs.robots.base import Robot, read_joint_limits
from drl_ros.envs.sim import PyBulletSim, pybullet  # sim imports pybullet without its C banner

__all__ = ["KUKA_DOWN_ORIENTATION", "KUKA_REST_POSE", "ControlMode", "KukaIiwa"]

ControlMode = Literal["ee_delta", "joint_delta"]

# Rest pose: the tool flange at about (0.55, 0.0, 0.45) m pointing straight down, i.e. near the
# centre of the reach workspace, elbow up and wrist bent so no joint is near a limit or a
# singularity (found with IK, then rounded).
KUKA_REST_POSE: tuple[float, ...] = (0.0, 0.5, 0.0, -1.585, 0.0, 1.055, 0.0)

# Tool flange pointing straight down (the iiwa's link-7 z axis along world -z), quaternion
# (x, y, z, w). Optional: with it, the top far corners of the default reach box are out of reach
# (the wrist would have to sit beyond the arm's 0.82 m shoulder-wrist span), up to 5 cm off.
KUKA_DOWN_ORIENTATION: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 0.0)


class KukaIiwa(Robot):
    """KUKA iiwa with a fixed base, position-controlled in end-effector or joint space.

    Observation (:meth:`get_obs`), float64, shape (14,):
        ``[0:7]`` joint positions (rad), ``[7:14]`` joint velocities (rad/s).

    Actions are normalized to [-1, 1]:
        * ``"ee_delta"``: shape (3,), a Cartesian displacement of the tool flange of up to
          ``max_ee_step`` metres per axis from where it is now, solved to joint targets with
          pybullet's null-space IK (joint limits, rest pose); position only unless
          ``ee_orientation`` is given.
        * ``"joint_delta"``: shape (7,), joint-position increments of up to ``max_joint_step``
          radians.
        In both modes the joint targets are clipped to the URDF limits and tracked by
        pybullet's POSITION_CONTROL motors with the URDF effort limits.

    Args:
        sim: the simulator to load into (injected; the robot never creates a client).
        control: ``"ee_delta"`` or ``"joint_delta"``.
        max_ee_step: metres per control step for a unit ``ee_delta`` action.
        max_joint_step: radians per control step for a unit ``joint_delta`` action.
        base_position: (3,) world position of the fixed base.
        rest_pose: (7,) joint positions used by :meth:`reset` and as the IK null-space target.
        ik_max_iterations, ik_residual_threshold: IK refinement budget and position tolerance
            (m). Each control step moves at most a few centimetres from the current pose, which
            seeds the solver, so 10 iterations to 1 mm suffice and cost half of 20 to 0.1 mm.
        ee_orientation: optional (4,) quaternion to hold the flange at (e.g.
            :data:`KUKA_DOWN_ORIENTATION`). None (default) solves for position only, which
            reaches the whole default goal box to within 3 mm; the rest-pose null-space term
            keeps the wrist from wandering.
    """

    ee_link: int = 6  # lbr_iiwa_link_7, the flange: the last link of the chain.
    n_joints: int = 7

    def __init__(
        self,
        sim: PyBulletSim,
        control: ControlMode = "ee_delta",
        max_ee_step: float = 0.05,
        max_joint_step: float = 0.05,
        base_position: Sequence[float] = (0.0, 0.0, 0.0),
        rest_pose: Sequence[float] = KUKA_REST_POSE,
        ik_max_iterations: int = 10,
        ik_residual_threshold: float = 1e-3,
        ee_orientation: Sequence[float] | None = None,
    ) -> None:
        super().__init__(sim)
        if control not in ("ee_delta", "joint_delta"):
            raise ValueError(f"control must be 'ee_delta' or 'joint_delta', got {control!r}")
        if len(rest_pose) != self.n_joints:
            raise ValueError(f"rest_pose needs {self.n_joints} values, got {len(rest_pose)}")
        self.control: ControlMode = control
        self.max_ee_step = float(max_ee_step)
        self.max_joint_step = float(max_joint_step)
        self.ik_max_iterations = int(ik_max_iterations)
        self.ik_residual_threshold = float(ik_residual_threshold)
        self.ee_orientation = None if ee_orientation is None else tuple(map(float, ee_orientation))
        self.base_position = np.asarray(base_position, dtype=np.float64)
        self.body = sim.load_urdf(
            "kuka_iiwa/model.urdf", base_position=base_position, use_fixed_base=True
        )
        self.joint_indices: list[int] = list(range(self.n_joints))
        self.joint_lower, self.joint_upper, self.joint_forces, self.joint_max_velocities = read_joint_limits(
            sim, self.body, self.joint_indices)
        self.rest_pose = np.clip(
            np.asarray(rest_pose, dtype=np.float64), self.joint_lower, self.joint_upper
        )
        # IK arguments as plain lists, computed once: pybullet converts them on every call.
        self._ik_lower = self.joint_lower.tolist()
        self._ik_upper = self.joint_upper.tolist()
        self._ik_ranges = (self.joint_upper - self.joint_lower).tolist()
        self._ik_rest = self.rest_pose.tolist()
        self._forces = self.joint_forces.tolist()
        self._action_space = spaces.Box(
            -1.0, 1.0, shape=(3 if control == "ee_delta" else self.n_joints,), dtype=np.float32
        )

    @property
    def action_space(self) -> spaces.Box:
        """Box(-1, 1, (3,)) for ``ee_delta``, Box(-1, 1, (7,)) for ``joint_delta``; float32."""
        return self._action_space

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint limits then URDF velocity limits, each shape (14,)."""
        low = np.concatenate([self.joint_lower, -self.joint_max_velocities])
        high = np.concatenate([self.joint_upper, self.joint_max_velocities])
        return low, high

    @property
    def ee_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """A cube of half-size 1.3 m around the base: the stretched arm is 1.281 m long."""
        return self.base_position - 1.3, self.base_position + 1.3

    # Names and sizes of the get_obs() values in order (the exported policy contract lists them).
    obs_terms: tuple[tuple[str, int], ...] = (("joint_positions", 7), ("joint_velocities", 7))

    def joint_map(self) -> dict[str, object]:
        """What the action and the joint observations refer to on the robot, for the exported
        policy contract: URDF joint names in observation order, the control mode, and what one
        unit of each action dimension commands."""
        names = [self.sim.client.getJointInfo(self.body, j)[1].decode() for j in self.joint_indices]
        if self.control == "ee_delta":
            action_terms, step, unit = ["ee_dx", "ee_dy", "ee_dz"], self.max_ee_step, "m"
        else:
            action_terms, step, unit = list(names), self.max_joint_step, "rad"
        return {"joints": names, "control": self.control, "action_terms": action_terms,
                "action_step": step, "action_step_unit": unit}

    def reset(self) -> None:
        """Teleport to the rest pose at zero velocity and hold it.

        ``resetJointState`` is cheap and deterministic, unlike ``resetSimulation`` which would
        reload every body. The motor targets are reset too, otherwise the last episode's
        targets would pull the arm away before the first action.
        """
        client = self.sim.client
        for joint, position in zip(self.joint_indices, self.rest_pose, strict=True):
            client.resetJointState(self.body, joint, float(position), 0.0)
        self._command_joint_positions(self.rest_pose)

    def set_action(self, action: np.ndarray) -> None:
        """Turn a normalized action into joint position targets (see the class docstring).

        Args:
            action: shape (3,) for ``ee_delta`` or (7,) for ``joint_delta``; clipped to [-1, 1].
        """
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if action.shape != self._action_space.shape:
            raise ValueError(
                f"expected action shape {self._action_space.shape}, got {action.shape}"
            )
        if self.control == "ee_delta":
            target = self.ee_position() + self.max_ee_step * action
            joint_target = self.inverse_kinematics(target, self.ee_orientation)
        else:
            joint_target = self.joint_positions() + self.max_joint_step * action
        self._command_joint_positions(np.clip(joint_target, self.joint_lower, self.joint_upper))

    def inverse_kinematics(
        self, position: np.ndarray, orientation: Sequence[float] | None = None
    ) -> np.ndarray:
        """Joint positions (7,) that put the flange at ``position`` (3,), seeded from the
        current joint state.

        The joint limits, ranges and rest pose switch pybullet to its null-space solver, which
        pulls the redundant degrees of freedom toward the rest pose instead of letting them
        drift toward limits over an episode, so successive solutions stay continuous.

        Args:
            position: (3,) target flange position in world coordinates (m).
            orientation: optional (4,) target quaternion (x, y, z, w); None = position only.
        """
        kwargs: dict[str, object] = {}
        if orientation is not None:
            kwargs["targetOrientation"] = list(orientation)
        solution = self.sim.client.calculateInverseKinematics(
            self.body,
            self.ee_link,
            targetPosition=[float(x) for x in position],
            lowerLimits=self._ik_lower,
            upperLimits=self._ik_upper,
            jointRanges=self._ik_ranges,
            restPoses=self._ik_rest,
            maxNumIterations=self.ik_max_iterations,
            residualThreshold=self.ik_residual_threshold,
            **kwargs,
        )
        return np.asarray(solution[: self.n_joints], dtype=np.float64)

    def joint_positions(self) -> np.ndarray:
        """Joint positions, shape (7,), rad."""
        states = self.sim.client.getJointStates(self.body, self.joint_indices)
        return np.array([s[0] for s in states], dtype=np.float64)

    def get_obs(self) -> np.ndarray:
        """``[joint positions (7), joint velocities (7)]``, float64, shape (14,)."""
        states = self.sim.client.getJointStates(self.body, self.joint_indices)
        return np.array([s[0] for s in states] + [s[1] for s in states], dtype=np.float64)

    def ee_position(self) -> np.ndarray:
        """World position of the flange (link 6 frame), shape (3,), metres."""
        # Index 4 is the URDF link frame (what IK targets); index 0 would be the link's centre
        # of mass. computeForwardKinematics is needed after resetJointState without a step.
        state = self.sim.client.getLinkState(self.body, self.ee_link, computeForwardKinematics=True)
        return np.array(state[4], dtype=np.float64)

    def _command_joint_positions(self, targets: np.ndarray) -> None:
        self.sim.client.setJointMotorControlArray(
            self.body,
            self.joint_indices,
            pybullet.POSITION_CONTROL,
            targetPositions=targets.tolist(),
            forces=self._forces,
        )
