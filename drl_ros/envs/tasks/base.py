"""The interface every task offers to :class:`~drl_ros.envs.robot_task_env.RobotTaskEnv`."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from drl_ros.envs.sim import PyBulletSim

__all__ = ["Task"]


class Task(ABC):
    """A goal, its scene objects and its reward, in an injected :class:`PyBulletSim`.

    Goal-conditioned like panda-gym: ``compute_reward`` and ``is_success`` take the achieved
    and desired goals explicitly (and accept batches, shape (..., goal_dim)) so that
    hindsight relabelling can recompute rewards without touching the simulator.
    """

    def __init__(self, sim: PyBulletSim) -> None:
        self.sim = sim

    @property
    @abstractmethod
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of :meth:`get_obs`, each float64 of shape (obs_dim,), finite."""

    @property
    def obs_dim(self) -> int:
        """Length of :meth:`get_obs`."""
        return len(self.obs_bounds[0])

    @abstractmethod
    def reset(self, np_random: np.random.Generator) -> None:
        """Sample a new goal (and object poses) from ``np_random``; physics is not stepped."""

    @abstractmethod
    def get_obs(self) -> np.ndarray:
        """Task observation, float64 array of shape (obs_dim,)."""

    @abstractmethod
    def get_achieved_goal(self) -> np.ndarray:
        """What the robot has achieved so far, float64 array of shape (goal_dim,)."""

    @abstractmethod
    def get_desired_goal(self) -> np.ndarray:
        """The current goal, float64 array of shape (goal_dim,)."""

    @abstractmethod
    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray
    ) -> np.ndarray | float:
        """Reward for (..., goal_dim) goals; a float for single goals, shape (...) for batches."""

    @abstractmethod
    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | bool:
        """Success for (..., goal_dim) goals; a bool for single goals, shape (...) for batches."""
