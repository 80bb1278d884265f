"""PyBullet robots and tasks behind one Gymnasium API."""

from __future__ import annotations

from typing import Any

import gymnasium

from drl_ros.envs.robot_task_env import RobotTaskEnv
from drl_ros.envs.robots import ControlMode, KukaIiwa, Robot
from drl_ros.envs.sim import DEFAULT_PHYSICS_HZ, DEFAULT_SUBSTEPS, PyBulletSim
from drl_ros.envs.tasks import ReachTask, Task

__all__ = [
    "ControlMode",
    "KukaIiwa",
    "PyBulletSim",
    "ReachTask",
    "Robot",
    "RobotTaskEnv",
    "Task",
    "make_reach_env",
]

_ROBOTS: dict[str, type[KukaIiwa]] = {"kuka_iiwa": KukaIiwa}


def make_reach_env(
    robot: str = "kuka_iiwa",
    control: ControlMode = "ee_delta",
    *,
    render_mode: str | None = None,
    physics_hz: float = DEFAULT_PHYSICS_HZ,
    substeps: int = DEFAULT_SUBSTEPS,
    max_episode_steps: int = 50,
    terminate_on_success: bool = False,
    distance_threshold: float = 0.05,
    robot_kwargs: dict[str, Any] | None = None,
    task_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> RobotTaskEnv:
    """Build a reach env: one :class:`PyBulletSim`, a robot, a :class:`ReachTask`.

    Args:
        robot: robot name; ``"kuka_iiwa"``.
        control: ``"ee_delta"`` (action (3,)) or ``"joint_delta"`` (action (7,)).
        render_mode: None, ``"rgb_array"`` or ``"human"`` (pybullet GUI).
        physics_hz, substeps: simulator timing; control runs at ``physics_hz / substeps``
            (48 Hz by default; see :mod:`drl_ros.envs.sim` for why).
        max_episode_steps: the env returns ``truncated=True`` at this step.
        terminate_on_success: end episodes with ``terminated=True`` on success.
        distance_threshold: reach tolerance in metres.
        robot_kwargs: extra robot constructor arguments (e.g. ``max_ee_step``).
        task_kwargs: extra :class:`ReachTask` arguments (e.g. ``goal_low``, ``goal_high``).
        **env_kwargs: extra :class:`RobotTaskEnv` arguments (e.g. ``render_width``).
    """
    if robot not in _ROBOTS:
        raise ValueError(f"unknown robot {robot!r}; known: {sorted(_ROBOTS)}")
    sim = PyBulletSim(render_mode=render_mode, physics_hz=physics_hz, substeps=substeps)
    try:
        robot_obj = _ROBOTS[robot](sim, control=control, **(robot_kwargs or {}))
        task = ReachTask(
            sim,
            robot_obj.ee_position,
            distance_threshold=distance_threshold,
            **(task_kwargs or {}),
        )
        return RobotTaskEnv(
            robot_obj,
            task,
            max_episode_steps=max_episode_steps,
            terminate_on_success=terminate_on_success,
            **env_kwargs,
        )
    except Exception:
        sim.close()  # Do not leak a physics server when construction fails.
        raise


def _register(env_id: str, **kwargs: Any) -> None:
    # The env truncates itself at max_episode_steps, so the spec keeps max_episode_steps=None and
    # gymnasium.make adds no TimeLimit wrapper (one truncation, at step 50). make() consumes its
    # own max_episode_steps argument to add an *outer* TimeLimit, which cannot lengthen the
    # env's episodes: for another horizon call make_reach_env(max_episode_steps=n) directly.
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point="drl_ros.envs:make_reach_env", kwargs=kwargs)


_register("drl_ros/KukaReach-v0", robot="kuka_iiwa", control="ee_delta")
_register("drl_ros/KukaReachJoint-v0", robot="kuka_iiwa", control="joint_delta")
# Sparse -1/0 reward and a goal layout for hindsight relabelling (drl_ros.envs.goal_env).
if "drl_ros/KukaReachGoal-v0" not in gymnasium.registry:
    gymnasium.register(id="drl_ros/KukaReachGoal-v0", entry_point="drl_ros.envs.goal_env:make_goal_reach_env",
                       kwargs={"robot": "kuka_iiwa", "control": "ee_delta"})
# The robot suite (Panda reach / push / pick-and-place / sort, A1 and Laikago walking).
from drl_ros.envs.suite import make_panda_env, make_quadruped_env, register_suite

__all__ += ["make_panda_env", "make_quadruped_env"]
register_suite()
