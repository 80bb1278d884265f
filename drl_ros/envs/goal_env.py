"""Goal-conditioned robot envs: a flat observation plus a declaration of where its goals sit.

drl_ros policies read flat Box observations, so instead of a ``Dict`` observation (Gymnasium
robotics' ``GoalEnv``) a goal env exposes :attr:`GoalRobotTaskEnv.goal_layout`, and hindsight
relabelling (:mod:`drl_ros.core.her`) uses it with the env's vectorized ``compute_reward``.
"""

from __future__ import annotations

from typing import Any

from drl_ros.core.her import GoalLayout
from drl_ros.envs.robot_task_env import RobotTaskEnv
from drl_ros.envs.robots import ControlMode, KukaIiwa
from drl_ros.envs.sim import DEFAULT_PHYSICS_HZ, DEFAULT_SUBSTEPS, PyBulletSim
from drl_ros.envs.tasks.goal_reach import GoalReachTask

__all__ = ["GoalRobotTaskEnv", "make_goal_reach_env"]


class GoalRobotTaskEnv(RobotTaskEnv):
    """:class:`RobotTaskEnv` around a reach-style task whose achieved goal is the end effector.

    Observation layout (see :class:`RobotTaskEnv`): ``[robot obs, ee (3), goal (3), goal - ee (3)]``;
    for the Kuka iiwa the achieved goal is ``[14:17]``, the desired goal ``[17:20]`` and the
    relative term ``[20:23]``. ``terminate_on_success`` must stay False: hindsight goals change
    which steps succeed, so success may not end an episode.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.terminate_on_success:
            raise ValueError("goal-conditioned envs do not terminate on success (HER relabels goals)")
        ee = self.robot.obs_dim
        task = ee + 3
        self.goal_layout = GoalLayout(desired=slice(task, task + 3), achieved=slice(ee, ee + 3),
                                      relative=(slice(task + 3, task + 6),))


def make_goal_reach_env(
    robot: str = "kuka_iiwa",
    control: ControlMode = "ee_delta",
    *,
    render_mode: str | None = None,
    physics_hz: float = DEFAULT_PHYSICS_HZ,
    substeps: int = DEFAULT_SUBSTEPS,
    max_episode_steps: int = 50,
    distance_threshold: float = 0.05,
    robot_kwargs: dict[str, Any] | None = None,
    task_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> GoalRobotTaskEnv:
    """Build the sparse-reward goal reach env (``drl_ros/KukaReachGoal-v0``); arguments as
    :func:`drl_ros.envs.make_reach_env`."""
    robots = {"kuka_iiwa": KukaIiwa}
    if robot not in robots:
        raise ValueError(f"unknown robot {robot!r}; known: {sorted(robots)}")
    sim = PyBulletSim(render_mode=render_mode, physics_hz=physics_hz, substeps=substeps)
    try:
        robot_obj = robots[robot](sim, control=control, **(robot_kwargs or {}))
        task = GoalReachTask(sim, robot_obj.ee_position, distance_threshold=distance_threshold,
                             **(task_kwargs or {}))
        return GoalRobotTaskEnv(robot_obj, task, max_episode_steps=max_episode_steps, **env_kwargs)
    except Exception:
        sim.close()  # Do not leak a physics server when construction fails.
        raise
