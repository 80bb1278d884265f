"""The hardware side of gym_bridge: a robot driver's joint_states in, joint position commands out.

The env's robot and task live on in a kinematic mirror (a headless PyBullet model that is never
stepped): every observation first copies the measured joint state into the mirror, so the
observation, the reward and the inverse kinematics of an end-effector action are computed exactly
as in simulation (robo-gym's idea: one env API whether the robot is simulated or real).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from drl_ros.ros.configs import GymBridgeConfig


@dataclass
class JointMap:
    """Driver joint names, order and units ↔ the model's joint vector (base to tip)."""

    names: list[str]
    """Driver names in model order."""
    command_order: list[str]
    scale: np.ndarray
    offset: np.ndarray

    @classmethod
    def from_config(cls, config: GymBridgeConfig) -> "JointMap":
        n = len(config.joint_names)
        scale = np.asarray(config.joint_position_scale or [1.0] * n, dtype=np.float64)
        offset = np.asarray(config.joint_position_offset or [0.0] * n, dtype=np.float64)
        if np.any(scale == 0.0):
            raise ValueError("joint_position_scale must not hold zeros")
        return cls(list(config.joint_names), list(config.command_joint_order or config.joint_names), scale, offset)

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


class KinematicMirror:
    """The env's robot and task, driven by measured joint states instead of physics."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.core = env.unwrapped
        self.robot = self.core.robot
        self.task = self.core.task
        self.observation_space = self.core.observation_space

    def sync(self, q: np.ndarray, qd: np.ndarray) -> None:
        client = self.robot.sim.client
        for joint, position, velocity in zip(self.robot.joint_indices, q, qd):
            client.resetJointState(self.robot.body, joint, float(position), float(velocity))

    def observe(self) -> tuple[np.ndarray, float, bool]:
        """Observation (the env's layout and bounds), reward and success for the synced state."""
        obs = np.concatenate([self.robot.get_obs(), self.robot.ee_position(), self.task.get_obs()])
        obs = np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)
        achieved, desired = self.task.get_achieved_goal(), self.task.get_desired_goal()
        reward = float(self.task.compute_reward(achieved, desired))
        return obs, reward, bool(self.task.is_success(achieved, desired))

    def new_goal(self, rng: np.random.Generator) -> None:
        self.task.reset(rng)

    def joint_targets(self, action: np.ndarray) -> np.ndarray:
        """Joint position targets for a normalized action, as the simulated robot computes them."""
        robot = self.robot
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if robot.control == "ee_delta":
            target = robot.ee_position() + robot.max_ee_step * action
            joints = robot.inverse_kinematics(target, robot.ee_orientation)
        else:
            joints = robot.joint_positions() + robot.max_joint_step * action
        return np.clip(joints, robot.joint_lower, robot.joint_upper)
