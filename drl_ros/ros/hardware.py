"""The hardware side of gym_bridge: a robot driver's joint_states (and, for legged robots, its IMU
and optionally a state estimator's odometry) in, joint position commands out.

The env's robot and task live on in a kinematic mirror (a headless PyBullet model that is never
stepped): every observation first copies the measured state into the mirror, so the observation,
the reward and the inverse kinematics of an end-effector action are computed exactly as in
simulation (robo-gym's idea: one env API whether the robot is simulated or real). For a floating
base the IMU's orientation and angular velocity (and odometry's position and linear velocity)
are written into the mirror's base, so the base terms come out of the env's own code too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from drl_ros.ros.configs import GymBridgeConfig, check_joint_map_lengths


@dataclass
class JointMap:
    """Driver joint names, order and units ↔ the model's joint vector (base to tip)."""

    names: list[str]
    """Driver names in model order."""
    command_order: list[str]
    scale: np.ndarray
    offset: np.ndarray

    @classmethod
    def from_config(cls, config: GymBridgeConfig, model_names: list[str]) -> JointMap:
        """The configured map; ``joint_names`` empty means the model's own (URDF) joint names."""
        names = list(config.joint_names) or list(model_names)
        if len(names) != len(model_names):
            raise ValueError(f"joint_names needs {len(model_names)} names (the model's joints), got {len(names)}")
        check_joint_map_lengths(names, config.joint_position_scale, config.joint_position_offset,
                                config.command_joint_order)
        n = len(names)
        scale = np.asarray(config.joint_position_scale or [1.0] * n, dtype=np.float64)
        offset = np.asarray(config.joint_position_offset or [0.0] * n, dtype=np.float64)
        if np.any(scale == 0.0):
            raise ValueError("joint_position_scale must not hold zeros")
        return cls(names, list(config.command_joint_order or names), scale, offset)

    def model_state(self, names: list[str], position: Any, velocity: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """Model-order (positions, velocities) from a JointState's fields; None if a joint is missing
        or a value is not finite. Joints the model does not know are ignored."""
        index = {name: i for i, name in enumerate(names)}
        if any(name not in index for name in self.names):
            return None
        position = np.asarray(position, dtype=np.float64)
        velocity = np.asarray(velocity, dtype=np.float64)
        rows = [index[name] for name in self.names]
        if position.size != len(names):
            return None
        q = (position[rows] - self.offset) / self.scale
        # Velocity is optional in JointState; a driver that sends none reads as standing still.
        qd = velocity[rows] / self.scale if velocity.size == len(names) else np.zeros(len(rows))
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(qd))):
            return None
        return q, qd

    def driver_command(self, model_positions: np.ndarray) -> list[float]:
        """Model-order joint positions → the command controller's order and units."""
        driver = self.scale * np.asarray(model_positions, dtype=np.float64) + self.offset
        by_name = dict(zip(self.names, driver.tolist()))
        return [by_name[name] for name in self.command_order]


@dataclass
class BaseState:
    """A floating base's measured state, as sensor_msgs/Imu and nav_msgs/Odometry give it."""

    orientation: np.ndarray
    """(4,) quaternion x, y, z, w: base to world (the IMU's orientation; its frame is the base's)."""
    angular_velocity: np.ndarray
    """(3,) rad/s in the base frame (the gyro)."""
    linear_velocity: np.ndarray | None = None
    """(3,) m/s in the base frame (odometry's twist, child frame); None: no estimate, read as 0."""
    position: np.ndarray | None = None
    """(3,) m in the odometry frame; None: no estimate, the mirror's base stays where it is."""

    @classmethod
    def from_imu(cls, orientation: Any, angular_velocity: Any) -> BaseState | None:
        """From an Imu's fields (x, y, z, w and x, y, z); None if not finite or not a rotation
        (an IMU without an orientation estimate sends zeros, REP 145 says covariance -1)."""
        q = np.asarray(orientation, dtype=np.float64)
        w = np.asarray(angular_velocity, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(w))) or not 0.9 < norm < 1.1:
            return None
        return cls(q / norm, w)


class KinematicMirror:
    """The env's robot and task, driven by measured joint states instead of physics."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.core = env.unwrapped
        self.robot = self.core.robot
        self.task = self.core.task
        self.observation_space = self.core.observation_space
        self.legged = bool(getattr(self.robot, "floating_base", False))
        """A floating-base robot (quadruped): its observation needs the base state (IMU)."""
        client = self.robot.sim.client
        self.joint_names = [client.getJointInfo(self.robot.body, j)[1].decode() for j in self.robot.joint_indices]
        """The model's (URDF) names of its controlled joints, in model order."""

    def sync(self, q: np.ndarray, qd: np.ndarray, base: BaseState | None = None) -> None:
        client = self.robot.sim.client
        for joint, position, velocity in zip(self.robot.joint_indices, q, qd):
            client.resetJointState(self.robot.body, joint, float(position), float(velocity))
        if base is not None:
            body = self.robot.body
            position = (base.position if base.position is not None
                        else np.asarray(client.getBasePositionAndOrientation(body)[0]))
            client.resetBasePositionAndOrientation(body, position.tolist(), base.orientation.tolist())
            # pybullet keeps base velocities in the world frame; the sensors give them in the base frame.
            rotation = np.asarray(client.getMatrixFromQuaternion(base.orientation.tolist())).reshape(3, 3)
            linear = base.linear_velocity if base.linear_velocity is not None else np.zeros(3)
            client.resetBaseVelocity(body, (rotation @ linear).tolist(), (rotation @ base.angular_velocity).tolist())

    def fallen(self) -> bool:
        """The robot's own failure test on the synced state (a legged robot that fell over)."""
        has_fallen = getattr(self.robot, "has_fallen", None)
        return bool(has_fallen()) if callable(has_fallen) else False

    def observe(self) -> tuple[np.ndarray, float, bool]:
        """Observation (the env's layout and bounds), reward and success for the synced state."""
        obs = np.concatenate([self.robot.get_obs(), self.robot.ee_position(), self.task.get_obs()])
        obs = np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)
        achieved, desired = self.task.get_achieved_goal(), self.task.get_desired_goal()
        reward = float(self.task.compute_reward(achieved, desired))
        return obs, reward, bool(self.task.is_success(achieved, desired))

    def new_goal(self, rng: np.random.Generator) -> None:
        """A new episode's task. A walking robot's gait goes on where it was: unlike a simulated
        reset, the real robot is still mid-stride, and a phase jump would jerk its legs."""
        self.task.reset(rng)

    def control_step_done(self) -> None:
        """A control step has passed since an action was applied: a walking robot's gait moves on
        by one step, as in simulation, however many commands the step saw."""
        if self.legged:
            self.robot.advance_gait()

    def joint_targets(self, action: np.ndarray) -> np.ndarray:
        """Joint position targets for a normalized action, as the simulated robot computes them."""
        robot = self.robot
        if self.legged:
            # The quadruped's own mapping (it clips the action): a target around its stance (plus
            # its gait, if any), recorded as the observation's last action, as in simulation.
            return robot.joint_targets(action)
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if robot.control == "ee_delta":
            target = robot.ee_position() + robot.max_ee_step * action
            joints = robot.inverse_kinematics(target, robot.ee_orientation)
        else:
            joints = robot.joint_positions() + robot.max_joint_step * action
        return np.clip(joints, robot.joint_lower, robot.joint_upper)
