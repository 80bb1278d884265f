"""Reach: bring the end effector within a tolerance of a random goal point."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from drl_ros.envs.sim import PyBulletSim
from drl_ros.envs.tasks.base import Task

__all__ = ["ReachTask"]

# Default goal box in world coordinates (the iiwa base sits at the origin): 0.3 x 0.6 x 0.5 m in
# front of the arm, clear of the base column (x >= 0.4) and of the floor (z >= 0.2). Every point
# is reachable: position-only IK from the rest pose reaches all 11^3 grid points to within
# 3 mm, and test/test_envs.py checks the corners and a scripted proportional controller.
DEFAULT_GOAL_LOW: tuple[float, float, float] = (0.4, -0.3, 0.2)
DEFAULT_GOAL_HIGH: tuple[float, float, float] = (0.7, 0.3, 0.7)


class ReachTask(Task):
    """Reach a goal sampled uniformly in a box; dense reward ``-||ee - goal||``.

    Observation (:meth:`get_obs`), float64, shape (6,):
        ``[0:3]`` goal position (m), ``[3:6]`` goal - end-effector position (m). The relative
        vector is redundant with the env's end-effector observation but lets a policy (or a
        proportional controller) read the direction to the goal directly.

    Args:
        sim: the simulator to draw the scene in (injected).
        get_ee_position: returns the robot's end-effector world position, shape (3,).
        goal_low, goal_high: (3,) corners of the goal box in world coordinates (m).
        distance_threshold: success tolerance in metres.
        add_ground: load ``plane.urdf`` so renders have a floor.
    """

    goal_dim: int = 3
    # Names and sizes of the get_obs() values in order (the exported policy contract lists them).
    obs_terms: tuple[tuple[str, int], ...] = (("goal", 3), ("goal_minus_ee", 3))

    def __init__(
        self,
        sim: PyBulletSim,
        get_ee_position: Callable[[], np.ndarray],
        goal_low: Sequence[float] = DEFAULT_GOAL_LOW,
        goal_high: Sequence[float] = DEFAULT_GOAL_HIGH,
        distance_threshold: float = 0.05,
        add_ground: bool = True,
    ) -> None:
        super().__init__(sim)
        self.get_ee_position = get_ee_position
        self.goal_low = np.asarray(goal_low, dtype=np.float64)
        self.goal_high = np.asarray(goal_high, dtype=np.float64)
        if self.goal_low.shape != (3,) or self.goal_high.shape != (3,):
            raise ValueError("goal_low and goal_high must have shape (3,)")
        if np.any(self.goal_low > self.goal_high):
            raise ValueError("goal_low must be <= goal_high on every axis")
        self.distance_threshold = float(distance_threshold)
        if add_ground:
            # Static, like the fixed robot base, so the two never generate contacts.
            sim.load_urdf("plane.urdf", use_fixed_base=True)
        self.goal = 0.5 * (self.goal_low + self.goal_high)
        # Visual-only: a collision shape would push the arm away from the goal it must reach.
        self.goal_marker = sim.create_visual_sphere(
            radius=self.distance_threshold, rgba=(0.1, 0.9, 0.1, 0.4), position=self.goal
        )

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Goal box, then +-3 m for goal - ee: far beyond any goal a 1.3 m arm can be
        sent to, so it never binds. Each shape (6,)."""
        return (
            np.concatenate([self.goal_low, np.full(3, -3.0)]),
            np.concatenate([self.goal_high, np.full(3, 3.0)]),
        )

    def reset(self, np_random: np.random.Generator) -> None:
        """Sample the goal uniformly in the box and move the marker there."""
        self.goal = np_random.uniform(self.goal_low, self.goal_high)
        self.sim.set_base_pose(self.goal_marker, self.goal)

    def get_obs(self) -> np.ndarray:
        """``[goal (3), goal - ee (3)]``, float64, shape (6,)."""
        return np.concatenate([self.goal, self.goal - self.get_ee_position()])

    def get_achieved_goal(self) -> np.ndarray:
        """End-effector position, shape (3,)."""
        return self.get_ee_position()

    def get_desired_goal(self) -> np.ndarray:
        """Goal position, shape (3,) (a copy, safe to keep)."""
        return self.goal.copy()

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray
    ) -> np.ndarray | float:
        """``-||achieved - desired||``; float for (3,) inputs, shape (...) for (..., 3)."""
        distance = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
        return -distance if distance.ndim else -float(distance)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | bool:
        """``||achieved - desired|| < distance_threshold``; bool or bool array of shape (...)."""
        distance = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
        return (
            distance < self.distance_threshold
            if distance.ndim
            else bool(distance < self.distance_threshold)
        )
