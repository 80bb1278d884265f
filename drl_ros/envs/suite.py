"""Factories and Gymnasium ids of the robot suite: Panda reach / push / pick-and-place / sort,
A1 and Laikago walking. Each env is one :class:`PyBulletSim`, a robot and a task in a
:class:`~drl_ros.envs.suite_env.SuiteEnv`; see docs/robots.md for spaces, rewards and results."""

from __future__ import annotations

from typing import Any, Literal

import gymnasium

from drl_ros.envs.robots.panda import Panda, PandaControl
from drl_ros.envs.robots.quadruped import A1, LAIKAGO, Quadruped
from drl_ros.envs.sim import DEFAULT_PHYSICS_HZ, PyBulletSim
from drl_ros.envs.suite_env import SuiteEnv
from drl_ros.envs.tasks.object_goal import CurriculumReachTask, ObjectGoalTask
from drl_ros.envs.tasks.sort import SortPrimitives, SortTask
from drl_ros.envs.tasks.walk import WalkTask

__all__ = ["PANDA_REACH_GOAL_HIGH", "PANDA_REACH_GOAL_LOW", "make_panda_env", "make_quadruped_env"]

PandaTask = Literal["reach", "push", "pick_place", "sort"]

# Reach goals for the Panda standing at the origin: 0.3 x 0.5 x 0.4 m in front of it, clear of
# the floor; every point is reachable with the gripper pointing down (test_robots.py checks the
# corners).
PANDA_REACH_GOAL_LOW = (0.3, -0.25, 0.05)
PANDA_REACH_GOAL_HIGH = (0.6, 0.25, 0.45)

# Per task: the horizon, physics substeps per control step, gripper blocked, default reward.
_PANDA_DEFAULTS: dict[str, dict[str, Any]] = {
    "reach": {"max_episode_steps": 50, "substeps": 5, "block_gripper": True, "reward_type": "dense"},
    "push": {"max_episode_steps": 50, "substeps": 5, "block_gripper": True, "reward_type": "sparse"},
    "pick_place": {"max_episode_steps": 50, "substeps": 5, "block_gripper": False, "reward_type": "sparse"},
    # One control step is one primitive plus 0.1 s of physics in which a released cube lands
    # (a 2 cm drop takes 0.064 s) and settles.
    "sort": {"max_episode_steps": 12, "substeps": 24, "block_gripper": False, "reward_type": None},
}


def make_panda_env(
    task: PandaTask = "reach",
    control: PandaControl = "ee_delta",
    *,
    render_mode: str | None = None,
    physics_hz: float = DEFAULT_PHYSICS_HZ,
    substeps: int | None = None,
    max_episode_steps: int | None = None,
    terminate_on_success: bool | None = None,
    reward_type: str | None = None,
    randomization: Any = None,
    curriculum: Any = None,
    robot_kwargs: dict[str, Any] | None = None,
    task_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> SuiteEnv:
    """Build a Panda env.

    Args:
        task: ``"reach"``, ``"push"``, ``"pick_place"`` or ``"sort"`` (discrete primitives).
        control: arm action for the continuous tasks, ``"ee_delta"`` or ``"joint_delta"``.
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        physics_hz, substeps: simulator timing (substeps default per task: 5, or 24 for sort).
        max_episode_steps: horizon (default 50; 12 for sort).
        terminate_on_success: end the episode on success (default False; True for sort).
        reward_type: ``"dense"`` or ``"sparse"`` (default dense for reach, sparse for push and
            pick-and-place; sort has its own).
        randomization, curriculum: see :class:`~drl_ros.envs.suite_env.SuiteEnv`.
        robot_kwargs, task_kwargs: extra :class:`Panda` / task arguments.
        **env_kwargs: extra :class:`SuiteEnv` arguments (e.g. ``render_width``).
    """
    if task not in _PANDA_DEFAULTS:
        raise ValueError(f"unknown Panda task {task!r}; known: {sorted(_PANDA_DEFAULTS)}")
    defaults = _PANDA_DEFAULTS[task]
    sim = PyBulletSim(render_mode=render_mode, physics_hz=physics_hz,
                      substeps=defaults["substeps"] if substeps is None else substeps)
    try:
        robot_args = {"block_gripper": defaults["block_gripper"], **(robot_kwargs or {})}
        panda = Panda(sim, control=control, **robot_args)
        task_args = dict(task_kwargs or {})
        if defaults["reward_type"] is not None:
            task_args.setdefault("reward_type", reward_type or defaults["reward_type"])
        robot: Any = panda
        if task == "reach":
            task_args.setdefault("goal_low", PANDA_REACH_GOAL_LOW)
            task_args.setdefault("goal_high", PANDA_REACH_GOAL_HIGH)
            task_obj: Any = CurriculumReachTask(sim, panda.ee_position, **task_args)
        elif task in ("push", "pick_place"):
            task_obj = ObjectGoalTask(sim, panda.ee_position, lift=task == "pick_place", **task_args)
        else:
            task_obj = SortTask(sim, panda.ee_position, **task_args)
            robot = SortPrimitives(panda, task_obj)
        return SuiteEnv(
            robot, task_obj,
            max_episode_steps=defaults["max_episode_steps"] if max_episode_steps is None else max_episode_steps,
            terminate_on_success=(task == "sort") if terminate_on_success is None else terminate_on_success,
            randomization=randomization, curriculum=curriculum, **env_kwargs)
    except Exception:
        sim.close()  # Do not leak a physics server when construction fails.
        raise


_QUADRUPEDS = {"a1": A1, "laikago": LAIKAGO}


def make_quadruped_env(
    robot: Literal["a1", "laikago"] = "a1",
    *,
    render_mode: str | None = None,
    physics_hz: float = DEFAULT_PHYSICS_HZ,
    substeps: int = 6,
    max_episode_steps: int = 400,
    randomization: Any = None,
    curriculum: Any = None,
    robot_kwargs: dict[str, Any] | None = None,
    task_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> SuiteEnv:
    """Build a walking env (:class:`Quadruped` + :class:`WalkTask`).

    The default timing, 240 Hz physics and 6 substeps, runs the policy at 40 Hz (PD at 240 Hz),
    and 400 steps make a 10 s episode. Arguments otherwise as :func:`make_panda_env`.
    """
    if robot not in _QUADRUPEDS:
        raise ValueError(f"unknown quadruped {robot!r}; known: {sorted(_QUADRUPEDS)}")
    sim = PyBulletSim(render_mode=render_mode, physics_hz=physics_hz, substeps=substeps)
    try:
        quadruped = Quadruped(sim, _QUADRUPEDS[robot], **(robot_kwargs or {}))
        task = WalkTask(sim, quadruped, **(task_kwargs or {}))
        return SuiteEnv(quadruped, task, max_episode_steps=max_episode_steps, randomization=randomization,
                        curriculum=curriculum, **env_kwargs)
    except Exception:
        sim.close()
        raise


ENV_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    "drl_ros/PandaReach-v0": ("make_panda_env", {"task": "reach"}),
    "drl_ros/PandaPush-v0": ("make_panda_env", {"task": "push"}),
    "drl_ros/PandaPickPlace-v0": ("make_panda_env", {"task": "pick_place"}),
    "drl_ros/PandaSort-v0": ("make_panda_env", {"task": "sort"}),
    "drl_ros/A1Walk-v0": ("make_quadruped_env", {"robot": "a1"}),
    "drl_ros/LaikagoWalk-v0": ("make_quadruped_env", {"robot": "laikago"}),
}


def register_suite() -> None:
    """Register the suite's ids (idempotent). The envs truncate themselves, so the specs carry
    no ``max_episode_steps`` and ``gymnasium.make`` adds no ``TimeLimit``."""
    for env_id, (factory, kwargs) in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=f"drl_ros.envs.suite:{factory}", kwargs=kwargs)
