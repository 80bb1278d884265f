"""Goal-conditioned reach with a sparse reward, the form hindsight relabelling is made for."""

from __future__ import annotations

import numpy as np

from drl_ros.envs.tasks.reach import ReachTask

__all__ = ["GoalReachTask"]


class GoalReachTask(ReachTask):
    """:class:`ReachTask` with panda-gym's sparse reward: ``-1`` until the end effector is within
    ``distance_threshold`` of the goal, ``0`` there.

    Observation, goals and success are the reach task's: :meth:`get_obs` is ``[goal (3),
    goal - ee (3)]``, the achieved goal is the end-effector position.
    """

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray
    ) -> np.ndarray | float:
        """``-(||achieved - desired|| >= threshold)``; float for (3,) inputs, float32 array of shape
        (...) for (..., 3)."""
        distance = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
        failed = distance >= self.distance_threshold
        return -failed.astype(np.float32) if distance.ndim else -float(failed)
