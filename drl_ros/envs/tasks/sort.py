"""Object sorting: colored cubes into the bin of their color, with discrete pick / place actions.

Why primitives rather than discrete gripper jogs (+-x, +-y, +-z, open, close): a jog policy must
chain some 30 correct jogs per object before any reward, which puts the task out of DQN's reach
on a CPU budget; with ``pick(object)`` / ``place(bin)`` the decision problem (which object, which
bin, in which order, recovering from a wrong bin) is what the agent learns, in 2 actions per
object, while the motion itself is scripted. That is also how such a sorter is built on a real
arm: a learned high-level policy over a motion planner's skills.

The primitives (:class:`SortPrimitives`) move the Panda kinematically between inverse-kinematics
waypoints (the arm is set to each solution; no motion planning), grasp by fixing the cube to the
gripper with a constraint, and release it 2 cm above the bin; the physics then runs one control
step (0.1 s at the default 24 substeps) so released cubes settle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from gymnasium import spaces

from drl_ros.envs.robots.base import Robot
from drl_ros.envs.robots.panda import Panda
from drl_ros.envs.sim import PyBulletSim, pybullet
from drl_ros.envs.tasks.base import Task
from drl_ros.envs.tasks.scene import COLORS, add_table, create_box, uniform_separated

__all__ = ["SortPrimitives", "SortTask"]

BIN_HALF = 0.07  # m, half side of a bin plate
BIN_TOP = 0.01  # m, height of a bin plate's top above the table
LIFT = 0.15  # m above the table at which cubes are carried


class SortTask(Task):
    """``n_objects`` cubes of random colors on the table, one bin per color in random order.

    The colors of the cubes are drawn with replacement from the first ``n_colors`` of
    red, green, blue, yellow; the bins (one per color) sit at fixed slots along y at
    ``x = bin_x`` and get a random permutation of the colors each episode, so the policy must
    read which slot holds the held cube's color.

    Observation (:meth:`get_obs`), float64, for n objects, c colors (3 and 3 by default: 34)::

        object_positions (3n)   cube positions (m)
        object_colors (n c)     one-hot color of each cube
        bin_colors (c c)        one-hot color of each bin slot
        held (n + 1)            one-hot held cube, last entry = nothing held
        object_sorted (n)       1 where a cube lies in the bin of its color

    Goals: achieved = the bin slot each cube lies in (-1: none), desired = the slot of its
    color's bin; shape (n,). Reward ``-(fraction of cubes not in their bin)`` every step, so a
    faster sort earns more; success: every cube in its bin.
    """

    camera: dict[str, object] = {"target": (0.45, 0.0, 0.0), "distance": 1.1, "yaw": 60.0, "pitch": -45.0}  # noqa: RUF012

    def __init__(
        self,
        sim: PyBulletSim,
        get_ee_position: Callable[[], np.ndarray],
        n_objects: int = 3,
        n_colors: int = 3,
        object_size: float = 0.04,
        object_low: Sequence[float] = (0.3, -0.25),
        object_high: Sequence[float] = (0.5, 0.25),
        bin_x: float = 0.65,
        bin_spacing: float = 0.2,
    ) -> None:
        super().__init__(sim)
        if not 1 <= n_colors <= len(COLORS):
            raise ValueError(f"n_colors must be in 1..{len(COLORS)}")
        if n_objects < 1:
            raise ValueError("n_objects must be >= 1")
        self.get_ee_position = get_ee_position
        self.n_objects, self.n_colors = int(n_objects), int(n_colors)
        self.object_size = float(object_size)
        self.object_low, self.object_high = np.asarray(object_low, float), np.asarray(object_high, float)
        self.color_names = list(COLORS)[: self.n_colors]
        offsets = (np.arange(self.n_colors) - (self.n_colors - 1) / 2) * bin_spacing
        self.bin_positions = np.array([[bin_x, y, BIN_TOP] for y in offsets])
        self.floor, self.table = add_table(sim, half_width=max(0.4, abs(offsets).max() + 0.15))
        half = self.object_size / 2
        self.bins = [create_box(sim, (BIN_HALF, BIN_HALF, BIN_TOP / 2), (p[0], p[1], BIN_TOP / 2),
                                COLORS[self.color_names[i]]) for i, p in enumerate(self.bin_positions)]
        self.objects = [create_box(sim, (half, half, half), (0.4, 0.0, half + 0.1 * i),
                                   COLORS[self.color_names[i % self.n_colors]], mass=0.1, lateral_friction=1.0)
                        for i in range(self.n_objects)]
        self.object_colors = np.zeros(self.n_objects, dtype=np.int64)
        self.bin_colors = np.arange(self.n_colors)
        self.held: int | None = None
        self.randomized_bodies: list[int] = list(self.objects)
        self.friction_bodies: list[int] = [self.table, *self.objects]

    @property
    def obs_terms(self) -> tuple[tuple[str, int], ...]:
        n, c = self.n_objects, self.n_colors
        return (("object_positions", 3 * n), ("object_colors", n * c), ("bin_colors", c * c),
                ("held", n + 1), ("object_sorted", n))

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions within +-2 m (a cube can fall off the table); the rest in [0, 1]."""
        n, c = self.n_objects, self.n_colors
        low = np.concatenate([np.full(3 * n, -2.0), np.zeros(n * c + c * c + n + 1 + n)])
        high = np.concatenate([np.full(3 * n, 2.0), np.ones(n * c + c * c + n + 1 + n)])
        return low, high

    def reset(self, np_random: np.random.Generator) -> None:
        self.object_colors = np_random.integers(0, self.n_colors, self.n_objects)
        self.bin_colors = np_random.permutation(self.n_colors)
        xy = uniform_separated(np_random, self.object_low, self.object_high, self.n_objects,
                               min_distance=2.0 * self.object_size)
        client = self.sim.client
        for body, color, position in zip(self.objects, self.object_colors, xy, strict=True):
            self.sim.set_base_pose(body, (*position, self.object_size / 2))
            client.resetBaseVelocity(body, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
            client.changeVisualShape(body, -1, rgbaColor=list(COLORS[self.color_names[color]]))
        for body, color in zip(self.bins, self.bin_colors, strict=True):
            client.changeVisualShape(body, -1, rgbaColor=list(COLORS[self.color_names[color]]))
        self.held = None

    def object_positions(self) -> np.ndarray:
        """Shape (n, 3)."""
        return np.array([self.sim.client.getBasePositionAndOrientation(b)[0] for b in self.objects])

    def bin_slots(self, positions: np.ndarray | None = None) -> np.ndarray:
        """The bin slot each cube lies in, -1 for none (or held); int array of shape (n,)."""
        positions = self.object_positions() if positions is None else positions
        slots = np.full(self.n_objects, -1, dtype=np.int64)
        for i, p in enumerate(positions):
            inside = np.all(np.abs(p[:2] - self.bin_positions[:, :2]) < BIN_HALF, axis=1)
            if inside.any() and p[2] < BIN_TOP + 2 * self.object_size and i != self.held:
                slots[i] = int(np.argmax(inside))
        return slots

    def target_slots(self) -> np.ndarray:
        """The slot of the bin of each cube's color, shape (n,)."""
        slot_of_color = np.argsort(self.bin_colors)
        return slot_of_color[self.object_colors]

    def get_obs(self) -> np.ndarray:
        positions = self.object_positions()
        eye = np.eye(self.n_colors)
        held = np.zeros(self.n_objects + 1)
        held[self.n_objects if self.held is None else self.held] = 1.0
        sorted_ = (self.bin_slots(positions) == self.target_slots()).astype(np.float64)
        return np.concatenate([positions.ravel(), eye[self.object_colors].ravel(),
                               eye[self.bin_colors].ravel(), held, sorted_])

    def get_achieved_goal(self) -> np.ndarray:
        return self.bin_slots().astype(np.float64)

    def get_desired_goal(self) -> np.ndarray:
        return self.target_slots().astype(np.float64)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | float:
        wrong = np.mean(np.asarray(achieved_goal) != np.asarray(desired_goal), axis=-1)
        return -wrong if np.ndim(wrong) else -float(wrong)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray | bool:
        done = np.all(np.asarray(achieved_goal) == np.asarray(desired_goal), axis=-1)
        return done if np.ndim(done) else bool(done)


class SortPrimitives(Robot):
    """A :class:`Panda` driven by ``n_objects + n_bins`` discrete primitives.

    Action ``a`` in ``Discrete(n_objects + n_bins)``: ``a < n_objects`` is ``pick(a)`` (grasp
    cube ``a`` wherever it is, bins included, and lift it), otherwise ``place(a - n_objects)``
    (carry the held cube over that bin slot and release it). A pick while holding, or a place
    with an empty gripper, does nothing (the step and its reward still count). The observation
    and end effector are the Panda's.
    """

    def __init__(self, panda: Panda, task: SortTask) -> None:
        super().__init__(panda.sim)
        self.panda, self.task = panda, task
        self.body = panda.body
        self.rest_pose = panda.rest_pose
        self.nominal_forces = panda.nominal_forces
        self.obs_terms = panda.obs_terms
        self._constraint: int | None = None
        self._action_space = spaces.Discrete(task.n_objects + task.n_colors)

    @property
    def action_space(self) -> spaces.Discrete:  # type: ignore[override]
        return self._action_space

    @property
    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.panda.obs_bounds

    @property
    def ee_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.panda.ee_bounds

    def joint_map(self) -> dict[str, object]:
        names = [f"pick_{i}" for i in range(self.task.n_objects)]
        names += [f"place_slot_{j}" for j in range(self.task.n_colors)]
        return {**self.panda.joint_map(), "control": "primitives", "action_terms": names,
                "action_step": None, "action_step_unit": None}

    def set_joint_positions(self, positions: np.ndarray) -> None:
        self.panda.set_joint_positions(positions)

    def set_motor_strength(self, scale: np.ndarray) -> None:
        self.panda.set_motor_strength(scale)

    def reset(self) -> None:
        self._release()
        self.panda.reset()

    def set_action(self, action: np.ndarray) -> None:
        a = int(np.asarray(action).reshape(()))
        if not 0 <= a < self._action_space.n:
            raise ValueError(f"action {a} outside Discrete({self._action_space.n})")
        n = self.task.n_objects
        if a < n and self.task.held is None:
            self._pick(a)
        elif a >= n and self.task.held is not None:
            self._place(a - n)

    def get_obs(self) -> np.ndarray:
        return self.panda.get_obs()

    def ee_position(self) -> np.ndarray:
        return self.panda.ee_position()

    # The arm is set to each waypoint (iterating IK, each solve seeded by the last) instead of
    # being driven there: the task is the decision, and kinematic moves cost no physics steps.
    def _move_to(self, position: np.ndarray) -> None:
        for _ in range(4):
            self.panda.set_joint_positions(self.panda.inverse_kinematics(position))

    def _pick(self, index: int) -> None:
        client, body = self.sim.client, self.task.objects[index]
        position = np.asarray(client.getBasePositionAndOrientation(body)[0])
        self._move_to(np.array([position[0], position[1], LIFT]))
        self.panda.command_fingers(self.task.object_size + 0.004)
        self.sim.set_base_pose(body, self.panda.ee_position(), (1.0, 0.0, 0.0, 0.0))
        client.resetBaseVelocity(body, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        self._constraint = client.createConstraint(self.panda.body, self.panda.ee_link, body, -1,
                                                   pybullet.JOINT_FIXED, [0, 0, 0], [0, 0, 0], [0, 0, 0])
        self.task.held = index

    def _place(self, slot: int) -> None:
        client, body = self.sim.client, self.task.objects[self.task.held]  # type: ignore[index]
        above = self._free_spot(slot) + np.array([0.0, 0.0, self.task.object_size / 2 + 0.02])
        self._release()
        self.sim.set_base_pose(body, above)
        client.resetBaseVelocity(body, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        self._move_to(np.array([above[0], above[1], LIFT]))
        self.panda.command_fingers(0.08)

    def _free_spot(self, slot: int) -> np.ndarray:
        """A spot in the bin that no other cube occupies: cubes dropped onto each other topple out."""
        center = self.task.bin_positions[slot]
        others = [p for i, p in enumerate(self.task.object_positions()) if i != self.task.held]
        offset = BIN_HALF - self.task.object_size / 2 - 0.01
        for dx, dy in ((0, 0), (-1, -1), (1, 1), (-1, 1), (1, -1)):
            spot = center + np.array([dx * offset, dy * offset, 0.0])
            if all(np.linalg.norm(p[:2] - spot[:2]) > 1.2 * self.task.object_size for p in others):
                return spot
        return center

    def _release(self) -> None:
        if self._constraint is not None:
            self.sim.client.removeConstraint(self._constraint)
            self._constraint = None
        self.task.held = None
