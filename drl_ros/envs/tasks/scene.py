"""Scene pieces shared by the table-top tasks: a table, boxes, colored plates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from drl_ros.envs.sim import PyBulletSim, pybullet

__all__ = ["COLORS", "TABLE_TOP_Z", "add_table", "create_box"]

# The Panda base stands on the table top at z = 0, like panda-gym: object heights are then
# heights above the table, and the floor (0.4 m below) is out of the arm's way.
TABLE_TOP_Z = 0.0
TABLE_HEIGHT = 0.4

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.9, 0.15, 0.15, 1.0),
    "green": (0.15, 0.75, 0.2, 1.0),
    "blue": (0.15, 0.3, 0.9, 1.0),
    "yellow": (0.95, 0.85, 0.1, 1.0),
}


def create_box(
    sim: PyBulletSim,
    half_extents: Sequence[float],
    position: npt.ArrayLike,
    rgba: Sequence[float],
    mass: float = 0.0,
    collision: bool = True,
    lateral_friction: float | None = None,
) -> int:
    """A box body; ``mass`` 0 makes it static, ``collision=False`` makes it visual-only."""
    client = sim.client
    visual = client.createVisualShape(pybullet.GEOM_BOX, halfExtents=list(half_extents), rgbaColor=list(rgba))
    shape = client.createCollisionShape(pybullet.GEOM_BOX, halfExtents=list(half_extents)) if collision else -1
    body = int(client.createMultiBody(baseMass=float(mass), baseCollisionShapeIndex=shape,
                                      baseVisualShapeIndex=visual,
                                      basePosition=[float(v) for v in np.asarray(position).ravel()]))
    if lateral_friction is not None:
        client.changeDynamics(body, -1, lateralFriction=float(lateral_friction))
    return body


def add_table(sim: PyBulletSim, x_range: tuple[float, float] = (-0.25, 0.85),
              half_width: float = 0.4) -> tuple[int, int]:
    """Floor 0.4 m below a grey table whose top is z = 0; returns (floor, table) body ids."""
    floor = sim.load_urdf("plane.urdf", base_position=(0.0, 0.0, TABLE_TOP_Z - TABLE_HEIGHT),
                          use_fixed_base=True)
    half_length = (x_range[1] - x_range[0]) / 2
    table = create_box(sim, (half_length, half_width, TABLE_HEIGHT / 2),
                       (x_range[0] + half_length, 0.0, TABLE_TOP_Z - TABLE_HEIGHT / 2),
                       (0.82, 0.82, 0.82, 1.0))
    return floor, table


def uniform_separated(rng: np.random.Generator, low: np.ndarray, high: np.ndarray, count: int,
                      min_distance: float, tries: int = 100) -> np.ndarray:
    """``count`` points uniform in the box ``[low, high]`` at least ``min_distance`` apart
    (rejection sampling; after ``tries`` failed draws the last draw is kept so that reset
    never loops forever). Shape (count, len(low))."""
    points: list[np.ndarray] = []
    for _ in range(count):
        for _ in range(tries):
            candidate = rng.uniform(low, high)
            if all(np.linalg.norm(candidate - p) >= min_distance for p in points):
                break
        points.append(candidate)
    return np.array(points)
