"""Push and pick-and-place: move a cube on a table to a goal point (panda-gym's tasks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from drl_ros.envs.sim import PyBulletSim
from drl_ros.envs.tasks.base import Task
from drl_ros.envs.tasks.reach import ReachTask
from drl_ros.envs.tasks.scene import add_table, create_box

__all__ = ["CurriculumReachTask", "ObjectGoalTask", "RewardType"]

RewardType = Literal["sparse", "dense"]


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), axis=-1)


class CurriculumReachTask(ReachTask):
    """:class:`ReachTask` with a difficulty level and a choice of reward.

    At level ``l`` in [0, 1] the goal is drawn in the full box and then pulled toward the end
    effector's start position: ``goal = start + s (g - start)`` with
    ``s = min_scale + (1 - min_scale) l``. Level 1 (the default) is the plain task.

    ``reward_type``: ``"dense"`` is ``-||ee - goal||``; ``"sparse"`` is ``-1`` until within the
    threshold, ``0`` there (the form hindsight relabelling needs).
    """

    def __init__(self, sim: PyBulletSim, get_ee_position: Callable[[], np.ndarray],
                 reward_type: RewardType = "dense", min_scale: float = 0.1, **kwargs: object) -> None:
        super().__init__(sim, get_ee_position, **kwargs)  # type: ignore[arg-type]
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        self.reward_type: RewardType = reward_type
        self.min_scale = float(min_scale)
        self.level = 1.0

    # Where hindsight relabelling finds the goals, by observation term name.
    goal_terms: tuple[str, str, tuple[str, ...]] = ("goal", "ee_position", ("goal_minus_ee",))
    camera: dict[str, object] = {"target": (0.35, 0.0, 0.2), "distance": 1.3, "yaw": 50.0, "pitch": -25.0}  # noqa: RUF012

    def set_curriculum_level(self, level: float) -> None:
        self.level = float(np.clip(level, 0.0, 1.0))

    def reset(self, np_random: np.random.Generator) -> None:
        goal = np_random.uniform(self.goal_low, self.goal_high)
        if self.level < 1.0:
            start = self.get_ee_position()
            scale = self.min_scale + (1.0 - self.min_scale) * self.level
            goal = np.clip(start + scale * (goal - start), self.goal_low, self.goal_high)
        self.goal = goal
        self.sim.set_base_pose(self.goal_marker, self.goal)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | float:
        if self.reward_type == "dense":
            return super().compute_reward(achieved_goal, desired_goal)
        failed = _distance(achieved_goal, desired_goal) >= self.distance_threshold
        return -failed.astype(np.float32) if failed.ndim else -float(failed)


class ObjectGoalTask(Task):
    """Bring a 4 cm cube to a goal point; the achieved goal is the cube's position.

    The cube starts on the table at a uniform random position in ``object_low..object_high``
    (x, y); the goal is drawn in ``goal_low..goal_high`` (x, y, and z above the table). Push
    keeps the goal on the table (z = half the cube size); pick-and-place lifts it up to
    ``goal_z_high`` so the gripper is needed.

    Observation (:meth:`get_obs`), float64, shape (21,)::

        [0:3]   object position (m)             [3:6]   object orientation (roll, pitch, yaw)
        [6:9]   object linear velocity (m/s)    [9:12]  object angular velocity (rad/s)
        [12:15] goal position (m)               [15:18] goal - object (m)
        [18:21] object - end effector (m)

    Reward: ``"sparse"`` (default) ``-1`` while ``||object - goal|| >= distance_threshold``,
    ``0`` once within it; ``"dense"`` ``-||object - goal||``. Success: distance below the
    threshold (5 cm, panda-gym's).

    Curriculum level ``l`` in [0, 1] pulls the goal toward the cube's start
    (``start + s (goal - start)``, ``s = min_scale + (1 - min_scale) l``): at low levels the cube
    barely has to move. Level 1 (default) is the full task.
    """

    goal_dim: int = 3
    obs_terms: tuple[tuple[str, int], ...] = (
        ("object_position", 3), ("object_orientation", 3), ("object_linear_velocity", 3),
        ("object_angular_velocity", 3), ("goal", 3), ("goal_minus_object", 3),
        ("object_minus_ee", 3),
    )
    # Where hindsight relabelling finds the goals, by observation term name.
    goal_terms: tuple[str, str, tuple[str, ...]] = ("goal", "object_position", ("goal_minus_object",))

    def __init__(
        self,
        sim: PyBulletSim,
        get_ee_position: Callable[[], np.ndarray],
        lift: bool = False,
        object_size: float = 0.04,
        object_low: Sequence[float] = (0.4, -0.15),
        object_high: Sequence[float] = (0.65, 0.15),
        goal_low: Sequence[float] = (0.4, -0.15),
        goal_high: Sequence[float] = (0.65, 0.15),
        goal_z_high: float = 0.2,
        distance_threshold: float = 0.05,
        reward_type: RewardType = "sparse",
        object_mass: float = 0.2,
        min_scale: float = 0.1,
    ) -> None:
        super().__init__(sim)
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        self.get_ee_position = get_ee_position
        self.lift = bool(lift)
        self.object_size = float(object_size)
        half = self.object_size / 2
        self.object_low = np.array([*object_low, half], dtype=np.float64)
        self.object_high = np.array([*object_high, half], dtype=np.float64)
        z_high = half + (float(goal_z_high) if self.lift else 0.0)
        self.goal_low = np.array([*goal_low, half], dtype=np.float64)
        self.goal_high = np.array([*goal_high, z_high], dtype=np.float64)
        self.distance_threshold = float(distance_threshold)
        self.reward_type: RewardType = reward_type
        self.min_scale = float(min_scale)
        self.level = 1.0
        self.floor, self.table = add_table(sim)
        self.object = create_box(sim, (half, half, half), self.object_low, (0.1, 0.3, 0.9, 1.0),
                                 mass=object_mass, lateral_friction=1.0)
        # Visual-only and translucent: the cube must be able to overlap its goal.
        self.goal_marker = create_box(sim, (half, half, half), self.goal_low, (0.1, 0.9, 0.1, 0.35),
                                      collision=False)
        self.goal = self.goal_low.copy()
        self.randomized_bodies: list[int] = [self.object]  # masses and friction to randomize
        self.friction_bodies: list[int] = [self.table, self.object]

    def set_curriculum_level(self, level: float) -> None:
        self.level = float(np.clip(level, 0.0, 1.0))

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions within +-2 m (the cube can fall off the table), angles +-pi, velocities
        +-10 m/s and +-50 rad/s, differences +-4 m; each shape (21,)."""
        high = np.concatenate([np.full(3, 2.0), np.full(3, np.pi), np.full(3, 10.0), np.full(3, 50.0),
                               np.full(3, 2.0), np.full(3, 4.0), np.full(3, 4.0)])
        return -high, high

    def reset(self, np_random: np.random.Generator) -> None:
        start = np_random.uniform(self.object_low, self.object_high)
        goal = np_random.uniform(self.goal_low, self.goal_high)
        if self.level < 1.0:
            scale = self.min_scale + (1.0 - self.min_scale) * self.level
            goal = start + scale * (goal - start)
        self.goal = goal
        self.sim.set_base_pose(self.object, start)
        self.sim.client.resetBaseVelocity(self.object, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        self.sim.set_base_pose(self.goal_marker, goal)

    def object_position(self) -> np.ndarray:
        return np.array(self.sim.client.getBasePositionAndOrientation(self.object)[0], dtype=np.float64)

    def get_obs(self) -> np.ndarray:
        client = self.sim.client
        position, orientation = client.getBasePositionAndOrientation(self.object)
        linear, angular = client.getBaseVelocity(self.object)
        position = np.asarray(position, dtype=np.float64)
        return np.concatenate([position, client.getEulerFromQuaternion(orientation), linear, angular,
                               self.goal, self.goal - position, position - self.get_ee_position()])

    def get_achieved_goal(self) -> np.ndarray:
        return self.object_position()

    def get_desired_goal(self) -> np.ndarray:
        return self.goal.copy()

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | float:
        distance = _distance(achieved_goal, desired_goal)
        if self.reward_type == "dense":
            return -distance if distance.ndim else -float(distance)
        failed = distance >= self.distance_threshold
        return -failed.astype(np.float32) if failed.ndim else -float(failed)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | bool:
        success = _distance(achieved_goal, desired_goal) < self.distance_threshold
        return success if success.ndim else bool(success)

    camera: dict[str, object] = {"target": (0.35, 0.0, 0.05), "distance": 1.2, "yaw": 50.0, "pitch": -30.0}  # noqa: RUF012
