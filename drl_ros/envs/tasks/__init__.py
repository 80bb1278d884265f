"""Tasks (goal, scene objects, reward) that live in an injected PyBulletSim."""

from drl_ros.envs.tasks.base import Task
from drl_ros.envs.tasks.reach import ReachTask

__all__ = ["ReachTask", "Task"]
