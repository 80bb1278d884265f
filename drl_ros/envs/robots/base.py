"""The interface every robot offers to :class:`~drl_ros.envs.robot_task_env.RobotTaskEnv`."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from gymnasium import spaces

from drl_ros.envs.sim import PyBulletSim

__all__ = ["Robot", "read_joint_limits"]


class Robot(ABC):
    """A robot living in an injected :class:`PyBulletSim`; it never creates a client.

    Subclasses load their body in ``__init__`` and implement the methods below. The env calls
    :meth:`reset` at every episode start, :meth:`set_action` once per control step (before
    ``sim.step()``), and :meth:`get_obs` / :meth:`ee_position` after it.
    """

    def __init__(self, sim: PyBulletSim) -> None:
        self.sim = sim

    @property
    @abstractmethod
    def action_space(self) -> spaces.Box:
        """Normalized float32 action space, usually [-1, 1]^n."""

    @property
    @abstractmethod
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of :meth:`get_obs`, each float64 of shape (obs_dim,), finite."""

    @property
    @abstractmethod
    def ee_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) world box, each shape (3,), that contains every reachable
        :meth:`ee_position`."""

    @property
    def obs_dim(self) -> int:
        """Length of :meth:`get_obs`."""
        return len(self.obs_bounds[0])

    @abstractmethod
    def reset(self) -> None:
        """Put the robot in its initial state without resetting the whole simulation."""

    @abstractmethod
    def set_action(self, action: np.ndarray) -> None:
        """Apply a normalized action (shape ``action_space.shape``); physics is not stepped."""

    @abstractmethod
    def get_obs(self) -> np.ndarray:
        """Proprioceptive observation, float64 array of shape (obs_dim,)."""

    @abstractmethod
    def ee_position(self) -> np.ndarray:
        """World position of the end effector (tool point), float64 array of shape (3,)."""


def read_joint_limits(sim: PyBulletSim, body: int, joint_indices: list[int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The URDF's ``(lower, upper, effort, velocity)`` limits of ``joint_indices``, float64 arrays.

    Also makes PyBullet enforce each joint's URDF velocity limit: it ignores it otherwise (its
    default cap is 100 rad/s), and enforcing it keeps the motion physical and the velocity
    observations inside their bounds.
    """
    client = sim.client
    # getJointInfo fields: 8 lower limit, 9 upper limit, 10 max effort, 11 max velocity.
    infos = [client.getJointInfo(body, j) for j in joint_indices]
    lower, upper, effort, velocity = (np.array([info[k] for info in infos], dtype=np.float64) for k in (8, 9, 10, 11))
    for joint, max_velocity in zip(joint_indices, velocity, strict=True):
        client.changeDynamics(body, joint, maxJointVelocity=float(max_velocity))
    return lower, upper, effort, velocity
