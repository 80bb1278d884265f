"""A Gymnasium env composed of one simulator, one robot and one task (panda-gym style)."""

from __future__ import annotations

import time
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drl_ros.envs.robots.base import Robot
from drl_ros.envs.tasks.base import Task

__all__ = ["RobotTaskEnv"]


class RobotTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """Robot + task in a shared :class:`~drl_ros.envs.sim.PyBulletSim`.

    Observation, float32, shape (robot.obs_dim + 3 + task.obs_dim,), in this order:
        ``[robot.get_obs(), robot.ee_position() (3), task.get_obs()]``, bounded by
        ``robot.obs_bounds``, ``robot.ee_bounds`` and ``task.obs_bounds`` (and clipped to them).
        For :class:`~drl_ros.envs.robots.KukaIiwa` + :class:`~drl_ros.envs.tasks.ReachTask`
        that is 23 values::

            [0:7]   joint positions (rad)
            [7:14]  joint velocities (rad/s)
            [14:17] end-effector position (m)
            [17:20] goal position (m)
            [20:23] goal - end-effector position (m)

        Bounds: joint limits, URDF velocity limits (10 rad/s), base +- 1.3 m, the goal box,
        +- 3 m.

    Action: the robot's float32 ``Box(-1, 1)`` (shape (3,) for ``ee_delta``, (7,) for
    ``joint_delta``). One :meth:`step` = one control step = ``sim.substeps`` physics steps.

    Episode end: ``truncated`` is True at exactly ``max_episode_steps`` steps (the env counts
    itself, so no ``TimeLimit`` wrapper is needed). ``terminated`` is True only when
    ``terminate_on_success`` is set and the task succeeds; by default reaching the goal does not
    end the episode, so a policy learns to stay there.

    ``info`` on reset and every step: ``is_success`` (bool) and ``distance`` (m, float).

    Args:
        robot: the robot; its ``sim`` is the environment's simulator.
        task: the task, built on the same ``sim`` as the robot.
        max_episode_steps: steps before ``truncated`` is returned.
        terminate_on_success: end the episode (``terminated=True``) on success.
        render_width, render_height: ``rgb_array`` image size in pixels.
    """

    # render_fps is replaced per instance by the sim's control rate (see __init__).
    metadata: dict[str, Any] = {  # noqa: RUF012  (gymnasium declares it as a plain class dict)
        "render_modes": ["human", "rgb_array"],
        "render_fps": 48,
    }

    def __init__(
        self,
        robot: Robot,
        task: Task,
        max_episode_steps: int = 50,
        terminate_on_success: bool = False,
        render_width: int = 480,
        render_height: int = 360,
    ) -> None:
        if robot.sim is not task.sim:
            raise ValueError("robot and task must share one PyBulletSim")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.sim = robot.sim
        self.robot = robot
        self.task = task
        self.max_episode_steps = int(max_episode_steps)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_width = int(render_width)
        self.render_height = int(render_height)
        self.render_mode = self.sim.render_mode
        if self.render_mode is not None and self.render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {self.render_mode!r}")
        # Per instance: the frame rate follows the control rate the sim was built with.
        self.metadata = {**self.metadata, "render_fps": self.sim.control_hz}

        (robot_low, robot_high), (ee_low, ee_high) = robot.obs_bounds, robot.ee_bounds
        task_low, task_high = task.obs_bounds
        self._obs_low = np.concatenate([robot_low, ee_low, task_low]).astype(np.float32)
        self._obs_high = np.concatenate([robot_high, ee_high, task_high]).astype(np.float32)
        self.observation_space = spaces.Box(self._obs_low, self._obs_high, dtype=np.float32)
        self.action_space = robot.action_space
        self._elapsed_steps = 0
        self._last_frame_time: float | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: robot to its rest pose, a new goal from ``self.np_random``.

        With the same ``seed`` (and then the same actions) the trajectory is identical.
        """
        super().reset(seed=seed)
        self.robot.reset()
        self.task.reset(self.np_random)
        self._elapsed_steps = 0
        return self._get_obs(), self._get_info()

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply ``action``, advance one control step, and score the result."""
        self.robot.set_action(action)
        self.sim.step()
        self._elapsed_steps += 1

        achieved, desired = self.task.get_achieved_goal(), self.task.get_desired_goal()
        reward = float(self.task.compute_reward(achieved, desired))
        info = self._get_info(achieved, desired)
        terminated = self.terminate_on_success and info["is_success"]
        truncated = self._elapsed_steps >= self.max_episode_steps
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, terminated, truncated, info

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None
    ) -> np.ndarray | float:
        """The task's reward for given goals (batched (..., 3) allowed), for HER relabelling."""
        return self.task.compute_reward(achieved_goal, desired_goal)

    def render(self) -> np.ndarray | None:
        """``rgb_array``: a (render_height, render_width, 3) uint8 image. ``human``: the GUI
        draws the scene itself; this only paces the loop to real time (one control step per
        ``sim.control_dt`` of wall time, so motion looks as it would on the robot) and returns
        None. Called by :meth:`step` in ``human`` mode."""
        if self.render_mode == "rgb_array":
            return self.sim.render_rgb_array(width=self.render_width, height=self.render_height)
        if self.render_mode == "human":
            now = time.perf_counter()
            if self._last_frame_time is not None:
                time.sleep(max(0.0, self._last_frame_time + self.sim.control_dt - now))
            self._last_frame_time = time.perf_counter()
        return None

    def policy_contract(self) -> dict[str, Any]:
        """What an exported policy's contract needs from the env beyond its spaces: observation
        terms in order (``{"name", "start", "stop"}``, from the robot's and task's ``obs_terms``,
        one term per part where they declare none), the robot's joint map (None if it has
        none) and the control rate."""
        robot_terms = getattr(self.robot, "obs_terms", None) or (("robot", self.robot.obs_dim),)
        task_terms = getattr(self.task, "obs_terms", None) or (("task", self.task.obs_dim),)
        terms, start = [], 0
        for name, size in (*robot_terms, ("ee_position", 3), *task_terms):
            terms.append({"name": name, "start": start, "stop": start + size})
            start += size
        joint_map = getattr(self.robot, "joint_map", None)
        return {"observation_terms": terms, "joint_map": joint_map() if callable(joint_map) else None,
                "control_rate_hz": float(self.sim.control_hz)}

    def close(self) -> None:
        """Disconnect the simulator."""
        self.sim.close()

    def _get_obs(self) -> np.ndarray:
        obs = np.concatenate(
            [self.robot.get_obs(), self.robot.ee_position(), self.task.get_obs()]
        ).astype(np.float32)
        # Joint limits are soft constraints in the solver and overshoot by ~1e-3 rad under full
        # force; clipping keeps every observation inside observation_space.
        return np.clip(obs, self._obs_low, self._obs_high)

    def _get_info(
        self, achieved: np.ndarray | None = None, desired: np.ndarray | None = None
    ) -> dict[str, Any]:
        if achieved is None or desired is None:
            achieved, desired = self.task.get_achieved_goal(), self.task.get_desired_goal()
        return {
            "is_success": bool(self.task.is_success(achieved, desired)),
            "distance": float(np.linalg.norm(achieved - desired)),
        }
