"""Walking: track a commanded forward velocity without falling."""

from __future__ import annotations

import numpy as np

from drl_ros.envs.robots.quadruped import Quadruped
from drl_ros.envs.sim import PyBulletSim
from drl_ros.envs.tasks.base import Task

__all__ = ["WalkTask"]


class WalkTask(Task):
    """Walk straight ahead, along the heading the robot had at the reset, at a commanded speed on
    flat ground.

    Each episode draws a commanded forward speed ``v*`` uniformly in
    ``level * [command_low, command_high]`` (``level`` is the curriculum level, 1 by default;
    lower levels ask for slower walking, level 0 for standing still).

    Observation (:meth:`get_obs`), shape (2,): ``[v*, heading_error]``, the base's yaw minus its
    yaw at the reset (rad, wrapped to [-pi, pi]; on a robot, from the IMU's orientation).

    Goals, shape (3,): achieved ``[v_forward, v_lateral, yaw_rate]`` of the base in the start
    heading's frame (m/s, m/s, rad/s), desired ``[v*, 0, 0]``. Reward per step (at most 1.5)::

        exp(-4 (v_forward - v*)^2) + 0.5 exp(-4 (v_lateral^2 + yaw_rate^2))

    Velocities are taken along the start heading, not the current one: a robot that turns away
    walks less far forward and more sideways, so it cannot earn the reward by walking in a circle.

    A fall ends the episode (the env's ``terminated``), forfeiting the rest of the reward.
    Success (per episode, :meth:`episode_success`): no fall, and the mean forward speed since
    the reset within ``speed_tolerance`` (default 20 %, at least 0.1 m/s) of ``v*``.
    """

    goal_dim: int = 3
    obs_terms: tuple[tuple[str, int], ...] = (("command_forward_velocity", 1), ("heading_error", 1))

    def __init__(self, sim: PyBulletSim, robot: Quadruped, command_low: float = 0.3,
                 command_high: float = 0.8, speed_tolerance: float = 0.2,
                 plane: str = "plane.urdf") -> None:
        super().__init__(sim)
        if command_low > command_high:
            raise ValueError("command_low must be <= command_high")
        self.robot = robot
        self.command_low, self.command_high = float(command_low), float(command_high)
        self.speed_tolerance = float(speed_tolerance)
        self.floor = sim.load_urdf(plane, use_fixed_base=True)
        self.friction_bodies: list[int] = [self.floor]
        self.level = 1.0
        self.command = self.command_high
        self._start = np.zeros(3)
        self._start_yaw = 0.0

    def set_curriculum_level(self, level: float) -> None:
        self.level = float(np.clip(level, 0.0, 1.0))

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([min(0.0, self.command_low), -np.pi]),
                np.array([max(0.0, self.command_high), np.pi]))

    def reset(self, np_random: np.random.Generator) -> None:
        self.command = self.level * float(np_random.uniform(self.command_low, self.command_high))
        self.robot.set_gait_command(self.command)
        self._start = self.robot.base_pose()[0]
        self._start_yaw = self._yaw()

    def get_obs(self) -> np.ndarray:
        return np.array([self.command, self.heading_error()])

    def _yaw(self) -> float:
        rotation = self.robot.base_rotation()
        return float(np.arctan2(rotation[1, 0], rotation[0, 0]))

    def heading_error(self) -> float:
        """Yaw since the reset (rad), wrapped to [-pi, pi]."""
        return float(np.angle(np.exp(1j * (self._yaw() - self._start_yaw))))

    def _along_start_heading(self, xy: np.ndarray) -> tuple[float, float]:
        """A world-frame horizontal vector as (forward, lateral) along the heading at the reset."""
        c, s = np.cos(self._start_yaw), np.sin(self._start_yaw)
        return float(c * xy[0] + s * xy[1]), float(-s * xy[0] + c * xy[1])

    def heading_velocity(self) -> np.ndarray:
        """``[forward, lateral, yaw rate]`` of the base in the frame of its heading at the reset."""
        linear, angular = self.robot.base_velocity_world()
        return np.array([*self._along_start_heading(linear), angular[2]])

    def get_achieved_goal(self) -> np.ndarray:
        return self.heading_velocity()

    def get_desired_goal(self) -> np.ndarray:
        return np.array([self.command, 0.0, 0.0])

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | float:
        a, d = np.asarray(achieved_goal, float), np.asarray(desired_goal, float)
        track = np.exp(-4.0 * (a[..., 0] - d[..., 0]) ** 2)
        steady = 0.5 * np.exp(-4.0 * (a[..., 1] ** 2 + a[..., 2] ** 2))
        reward = track + steady
        return reward if reward.ndim else float(reward)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | bool:
        """Per step: forward speed within the tolerance of the command."""
        a, d = np.asarray(achieved_goal, float), np.asarray(desired_goal, float)
        ok = np.abs(a[..., 0] - d[..., 0]) <= self._tolerance(d[..., 0])
        return ok if ok.ndim else bool(ok)

    def _tolerance(self, command: np.ndarray | float) -> np.ndarray | float:
        return np.maximum(0.1, self.speed_tolerance * np.abs(command))

    def mean_forward_speed(self, elapsed_s: float) -> float:
        """Mean speed along the start heading over ``elapsed_s`` seconds since the reset."""
        if elapsed_s <= 0:
            return 0.0
        forward, _ = self._along_start_heading(self.robot.base_pose()[0] - self._start)
        return forward / elapsed_s

    def episode_success(self, elapsed_s: float) -> bool:
        """No fall, and the mean forward speed over the ``elapsed_s`` seconds of the episode so
        far within the tolerance of the command."""
        speed = self.mean_forward_speed(elapsed_s)
        return not self.robot.has_fallen() and abs(speed - self.command) <= float(self._tolerance(self.command))

    def camera_view(self) -> dict[str, object]:
        """Follow the base."""
        position = self.robot.base_pose()[0]
        return {"target": (position[0], position[1], 0.2), "distance": 1.0, "yaw": 40.0, "pitch": -25.0}

