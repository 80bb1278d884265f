"""Quadrupeds from ``pybullet_data``: Unitree A1 and Laikago, joint-position actions through PD."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from drl_ros.envs.robots.base import Robot
from drl_ros.envs.sim import PyBulletSim, pybullet

__all__ = ["A1", "LAIKAGO", "Quadruped", "QuadrupedModel", "TrotGait"]


@dataclass(frozen=True)
class QuadrupedModel:
    """What differs between quadrupeds: the URDF, its motor joints and a standing pose."""

    name: str
    urdf: str
    motor_joints: tuple[str, ...]
    """URDF joint names in action order: per leg FR, FL, RR, RL, joints hip, thigh, knee."""
    stand_pose: tuple[float, ...]
    """(12,) joint angles (rad) of a stable stance, the action's zero."""
    spawn_height: float
    """Base height (m) at reset: the stance with the feet just above the floor."""
    stand_height: float
    """Base height (m) the stance settles at; fall detection is relative to it."""
    max_force: float
    """Motor force (torque) limit in N m, the same for every joint."""
    joint_range: float = 1.2
    """Half-width (rad) around the stance that targets are clipped to where the URDF gives no
    limits (Laikago's give none)."""


_LEGS = ("FR", "FL", "RR", "RL")

A1 = QuadrupedModel(
    name="a1", urdf="a1/a1.urdf",
    motor_joints=tuple(f"{leg}_{part}_joint" for leg in _LEGS for part in ("hip", "upper", "lower")),
    # The stance of Unitree's A1 examples; it settles at a 0.27 m base height.
    stand_pose=(0.0, 0.9, -1.8) * 4, spawn_height=0.28, stand_height=0.27, max_force=33.5,
)
LAIKAGO = QuadrupedModel(
    name="laikago", urdf="laikago/laikago_toes_zup.urdf",
    motor_joints=tuple(f"{leg}_{part}" for leg in _LEGS for part in
                       ("hip_motor_2_chassis_joint", "upper_leg_2_hip_motor_joint", "lower_leg_2_upper_leg_joint")),
    stand_pose=(0.0, 0.67, -1.25) * 4, spawn_height=0.37, stand_height=0.355, max_force=40.0,
)


@dataclass(frozen=True)
class TrotGait:
    """An open-loop trot that the policy's action is added to: a trajectory generator as in PMTG
    (Iscen et al., 2018, "Policies Modulating Trajectory Generators"). PPO then learns
    corrections to a walking motion instead of discovering a gait from falling over.

    Diagonal legs (FR with RL, FL with RR) swing together, half a period apart. For a leg at
    phase ``phi`` the targets move from the stance by::

        thigh: + swing * cos(phi)          (forward while swinging, back while in stance)
        knee:  - knee_lift * max(0, sin(phi))   (flexed to clear the floor while swinging)

    with ``swing = thigh_swing * clip(v* / reference_speed, 0, max_scale)`` for the commanded
    forward speed ``v*`` (zero: stepping in place). On their own the defaults carry the A1 forward
    at about 0.45 m/s for a 0.55 m/s command on nominal physics, but it falls within seconds at
    faster commands or under domain randomization: balance is left to the policy.
    """

    frequency_hz: float = 2.5
    thigh_swing: float = 0.35
    """Fore-aft thigh amplitude (rad) at ``reference_speed``."""
    knee_lift: float = 0.5
    """Extra knee flexion (rad) at mid-swing."""
    reference_speed: float = 0.55
    """Commanded speed (m/s) at which the thigh swings by ``thigh_swing``."""
    max_scale: float = 1.5

    def __post_init__(self) -> None:
        for name in ("frequency_hz", "reference_speed", "max_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"gait.{name} must be a positive number, got {value!r}")
        for name in ("thigh_swing", "knee_lift"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"gait.{name} must be a number >= 0, got {value!r}")

    LEG_PHASE_OFFSETS: ClassVar[tuple[float, ...]] = (0.0, math.pi, math.pi, 0.0)
    """Per leg FR, FL, RR, RL: the diagonal pairs of a trot."""

    def offsets(self, phase: float, speed_scale: float) -> np.ndarray:
        """(12,) joint offsets from the stance at ``phase`` (rad) of the FR leg."""
        out = np.zeros(12)
        swing = self.thigh_swing * speed_scale
        for leg, offset in enumerate(self.LEG_PHASE_OFFSETS):
            phi = phase + offset
            out[3 * leg + 1] = swing * math.cos(phi)
            out[3 * leg + 2] = -self.knee_lift * max(0.0, math.sin(phi))
        return out


class Quadruped(Robot):
    """A free-floating quadruped whose 12 motors track joint-position targets through PD control.

    Action, float32 ``Box(-1, 1, (12,))``: joint targets ``stand_pose + action_scale * action``
    (clipped to the joint limits), tracked by pybullet's PD motors (``POSITION_CONTROL`` with
    ``position_gain`` / ``velocity_gain``, force limited to ``max_force``) at every physics step;
    the policy sets a new target once per control step (the env's ``substeps``).

    Observation (:meth:`get_obs`), float64, shape (45,), IMU and encoders as on the robot::

        [0:3]   gravity direction in the base frame (IMU attitude; (0, 0, -1) upright)
        [3:6]   base angular velocity in the base frame (gyro, rad/s)
        [6:9]   base linear velocity in the base frame (m/s; a state estimate on hardware)
        [9:21]  joint positions (rad)     [21:33] joint velocities (rad/s)
        [33:45] previous action

    With a ``gait`` (:class:`TrotGait`, off by default) the targets are
    ``stand_pose + gait offsets + action_scale * action``: the action corrects an open-loop trot
    whose phase advances by one control step per action, and the observation gains
    ``[45:47] gait_phase``, ``(sin, cos)`` of the phase the next action is applied at. A walking
    task sets the trot's stride from its commanded speed (:meth:`set_gait_command`).

    :meth:`ee_position` reports the base position (named ``base_position`` in the policy
    contract). :meth:`has_fallen`: base below ``fall_height_fraction`` of the stance height or
    tilted more than ``fall_tilt`` radians.
    """

    ee_term_name = "base_position"
    floating_base = True
    obs_terms: tuple[tuple[str, int], ...] = (
        ("base_gravity", 3), ("base_angular_velocity", 3), ("base_linear_velocity", 3),
        ("joint_positions", 12), ("joint_velocities", 12), ("last_action", 12),
    )

    def __init__(self, sim: PyBulletSim, model: QuadrupedModel = A1, action_scale: float = 0.4,
                 position_gain: float = 0.3, velocity_gain: float = 1.0,
                 fall_height_fraction: float = 0.55, fall_tilt: float = 1.0,
                 gait: TrotGait | Mapping[str, Any] | None = None) -> None:
        super().__init__(sim)
        self.model = model
        if gait is not None and not isinstance(gait, TrotGait):
            from drl_ros.core.config_loading import load_config

            gait = load_config(TrotGait, dict(gait), source_name="gait")
        self.gait: TrotGait | None = gait
        self.gait_phase = 0.0
        self._gait_scale = 1.0
        if gait is not None:
            self.obs_terms = (*type(self).obs_terms, ("gait_phase", 2))
        self.action_scale = float(action_scale)
        self.position_gain, self.velocity_gain = float(position_gain), float(velocity_gain)
        self.fall_height = fall_height_fraction * model.stand_height
        self.fall_tilt = float(fall_tilt)
        self.body = sim.load_urdf(model.urdf, base_position=(0.0, 0.0, model.spawn_height))
        client = sim.client
        by_name = {client.getJointInfo(self.body, j)[1].decode(): j for j in range(client.getNumJoints(self.body))}
        missing = [name for name in model.motor_joints if name not in by_name]
        if missing:
            raise ValueError(f"{model.urdf} has no joints {missing}")
        self.joint_indices = [by_name[name] for name in model.motor_joints]
        self.rest_pose = np.asarray(model.stand_pose, dtype=np.float64)
        infos = [client.getJointInfo(self.body, j) for j in self.joint_indices]
        lower = np.array([i[8] for i in infos])
        upper = np.array([i[9] for i in infos])
        no_limit = lower >= upper  # pybullet reports (0, -1) for a joint without limits
        self.joint_lower = np.where(no_limit, self.rest_pose - model.joint_range, lower)
        self.joint_upper = np.where(no_limit, self.rest_pose + model.joint_range, upper)
        self.joint_max_velocities = np.array([min(i[11], 30.0) if i[11] > 0 else 30.0 for i in infos])
        for joint in self.joint_indices:
            client.changeDynamics(self.body, joint, maxJointVelocity=30.0)
        self.nominal_forces = np.full(12, model.max_force)
        self._forces = self.nominal_forces.tolist()
        self._gains = ([self.position_gain] * 12, [self.velocity_gain] * 12)
        self.last_action = np.zeros(12)
        self._action_space = spaces.Box(-1.0, 1.0, (12,), np.float32)

    @property
    def action_space(self) -> spaces.Box:
        return self._action_space

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        high_imu = np.concatenate([np.ones(3), np.full(3, 30.0), np.full(3, 10.0)])
        phase = np.ones(2 if self.gait is not None else 0)
        low = np.concatenate([-high_imu, self.joint_lower - 0.1, -self.joint_max_velocities, -np.ones(12), -phase])
        high = np.concatenate([high_imu, self.joint_upper + 0.1, self.joint_max_velocities, np.ones(12), phase])
        return low, high

    @property
    def ee_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The base position: anywhere within 100 m of the start, below 3 m."""
        return np.array([-100.0, -100.0, -1.0]), np.array([100.0, 100.0, 3.0])

    def joint_map(self) -> dict[str, object]:
        return {"joints": list(self.model.motor_joints), "control": "joint_position_pd",
                "action_terms": list(self.model.motor_joints), "action_step": self.action_scale,
                "action_step_unit": "rad from stand_pose", "stand_pose": list(self.model.stand_pose),
                "pd": {"position_gain": self.position_gain, "velocity_gain": self.velocity_gain,
                       "max_force_nm": self.model.max_force},
                "gait": None if self.gait is None else {
                    "kind": "trot", **asdict(self.gait), "leg_phase_offsets": list(TrotGait.LEG_PHASE_OFFSETS),
                    "phase_step_rad": self._phase_step()}}

    def neutral_action(self) -> np.ndarray:
        """Zero: hold the stance (with a gait: follow the trot uncorrected)."""
        return np.zeros(12, dtype=np.float32)

    def reset(self) -> None:
        """Stance at the spawn height, upright, at rest; motors holding the stance."""
        client = self.sim.client
        self.sim.set_base_pose(self.body, (0.0, 0.0, self.model.spawn_height))
        client.resetBaseVelocity(self.body, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        self.last_action = np.zeros(12)
        self.restart_gait()
        self.set_joint_positions(self.rest_pose)

    def restart_gait(self) -> None:
        """Phase 0: the FR and RL legs start their swing with the next action."""
        self.gait_phase = 0.0

    def set_gait_command(self, forward_speed: float) -> None:
        """Stride for a commanded forward speed (m/s); without a gait, nothing to set."""
        if self.gait is not None:
            self._gait_scale = float(np.clip(forward_speed / self.gait.reference_speed, 0.0, self.gait.max_scale))

    def _phase_step(self) -> float:
        return 2.0 * math.pi * self.gait.frequency_hz * self.sim.control_dt if self.gait is not None else 0.0

    def set_joint_positions(self, positions: np.ndarray) -> None:
        positions = np.clip(np.asarray(positions, dtype=np.float64), self.joint_lower, self.joint_upper)
        for joint, angle in zip(self.joint_indices, positions, strict=True):
            self.sim.client.resetJointState(self.body, joint, float(angle), 0.0)
        self._command(positions)

    def set_motor_strength(self, scale: np.ndarray) -> None:
        self._forces = (self.nominal_forces * np.asarray(scale, dtype=np.float64)).tolist()

    def set_action(self, action: np.ndarray) -> None:
        self._command(self.joint_targets(action))
        self.advance_gait()

    def joint_targets(self, action: np.ndarray) -> np.ndarray:
        """The 12 joint targets for ``action`` at the gait's current phase, clipped to the limits;
        records it as the last action (for the simulated robot and for a real one behind
        gym_bridge alike). The phase moves on only with :meth:`advance_gait`, once per control
        step, however many commands a step sees."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if action.shape != (12,):
            raise ValueError(f"expected action shape (12,), got {action.shape}")
        self.last_action = action
        targets = self.rest_pose + self.action_scale * action
        if self.gait is not None:
            targets = targets + self.gait.offsets(self.gait_phase, self._gait_scale)
        return np.clip(targets, self.joint_lower, self.joint_upper)

    def advance_gait(self) -> None:
        """One control step of the gait's phase (nothing without a gait)."""
        if self.gait is not None:
            self.gait_phase = (self.gait_phase + self._phase_step()) % (2.0 * math.pi)

    def track_joint_targets(self, targets: np.ndarray) -> None:
        """Hold ``targets`` (12 joint angles, clipped to the limits) with the PD motors, as
        :meth:`set_action` does: for a driver that receives joint positions, not actions."""
        self._command(np.clip(np.asarray(targets, dtype=np.float64), self.joint_lower, self.joint_upper))

    def _command(self, targets: np.ndarray) -> None:
        self.sim.client.setJointMotorControlArray(
            self.body, self.joint_indices, pybullet.POSITION_CONTROL, targetPositions=targets.tolist(),
            forces=self._forces, positionGains=self._gains[0], velocityGains=self._gains[1])

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        position, orientation = self.sim.client.getBasePositionAndOrientation(self.body)
        return np.asarray(position, dtype=np.float64), np.asarray(orientation, dtype=np.float64)

    def base_rotation(self) -> np.ndarray:
        """(3, 3) base-to-world rotation."""
        _, orientation = self.sim.client.getBasePositionAndOrientation(self.body)
        return np.asarray(self.sim.client.getMatrixFromQuaternion(orientation)).reshape(3, 3)

    def base_velocity_world(self) -> tuple[np.ndarray, np.ndarray]:
        linear, angular = self.sim.client.getBaseVelocity(self.body)
        return np.asarray(linear, dtype=np.float64), np.asarray(angular, dtype=np.float64)

    def get_obs(self) -> np.ndarray:
        rotation = self.base_rotation()
        linear, angular = self.base_velocity_world()
        states = self.sim.client.getJointStates(self.body, self.joint_indices)
        phase = [math.sin(self.gait_phase), math.cos(self.gait_phase)] if self.gait is not None else []
        return np.concatenate([rotation.T @ np.array([0.0, 0.0, -1.0]), rotation.T @ angular,
                               rotation.T @ linear, [s[0] for s in states], [s[1] for s in states],
                               self.last_action, phase])

    def ee_position(self) -> np.ndarray:
        return self.base_pose()[0]

    def has_fallen(self) -> bool:
        """Base too low, or tilted (roll/pitch) beyond ``fall_tilt``."""
        height = self.base_pose()[0][2]
        up_z = self.base_rotation()[2, 2]  # cosine of the angle between base z and world z
        return bool(height < self.fall_height or up_z < np.cos(self.fall_tilt))
