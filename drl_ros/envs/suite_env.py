"""The robot-suite env: :class:`RobotTaskEnv` plus what sim-to-real training needs.

On top of the plain robot + task composition this adds, all optional and off by default:

* domain randomization (:mod:`drl_ros.envs.randomization`) drawn at every reset: link masses,
  friction, motor strength, action latency, observation noise, initial joint offsets;
* a curriculum level (:mod:`drl_ros.envs.curriculum`) forwarded to the task;
* termination on failure (a robot that reports ``has_fallen()``), and an episode-level success
  (a task that defines ``episode_success(elapsed_s)``, e.g. walking: "no fall and fast enough on
  average") in place of the per-step one;
* a :class:`~drl_ros.core.her.GoalLayout` when the task names its goal terms, so hindsight
  relabelling works on it;
* a per-task camera for ``rgb_array`` frames.

The observation layout, spaces and reward are exactly :class:`RobotTaskEnv`'s.
"""

from __future__ import annotations

from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drl_ros.core.her import GoalLayout
from drl_ros.envs.curriculum import CurriculumConfig
from drl_ros.envs.randomization import (
    DomainRandomization,
    RandomizationSample,
    load_randomization,
    sample_range,
)
from drl_ros.envs.robot_task_env import RobotTaskEnv
from drl_ros.envs.robots.base import Robot
from drl_ros.envs.tasks.base import Task

__all__ = ["SuiteEnv"]


class SuiteEnv(RobotTaskEnv):
    """:class:`RobotTaskEnv` with randomization, curriculum, failure termination and a camera.

    Args:
        robot, task, max_episode_steps, terminate_on_success, render_width, render_height:
            as :class:`RobotTaskEnv`.
        randomization: a :class:`~drl_ros.envs.randomization.DomainRandomization`, a mapping of
            its fields, or a YAML file path; None randomizes nothing.
        curriculum: a :class:`~drl_ros.envs.curriculum.CurriculumConfig` or mapping. The env then
            starts at its ``start_level`` and a trainer may drive the level; None keeps level 1.
    """

    def __init__(
        self,
        robot: Robot,
        task: Task,
        max_episode_steps: int = 50,
        terminate_on_success: bool = False,
        randomization: DomainRandomization | dict[str, Any] | str | None = None,
        curriculum: CurriculumConfig | dict[str, Any] | None = None,
        render_width: int = 480,
        render_height: int = 360,
    ) -> None:
        super().__init__(robot, task, max_episode_steps=max_episode_steps,
                         terminate_on_success=terminate_on_success,
                         render_width=render_width, render_height=render_height)
        self.randomization = load_randomization(randomization)
        if isinstance(self.action_space, spaces.Discrete) and self.randomization.latency_steps != (0, 0):
            raise ValueError("latency_steps needs a continuous action: a delayed primitive has no neutral value")
        self.curriculum_config: CurriculumConfig | None = None
        if curriculum is not None:
            from drl_ros.core.config_loading import load_config

            self.curriculum_config = (curriculum if isinstance(curriculum, CurriculumConfig)
                                      else load_config(CurriculumConfig, curriculum, source_name="curriculum"))
        self.curriculum_level = 1.0
        self.set_curriculum_level(1.0 if self.curriculum_config is None else self.curriculum_config.start_level)

        self.term_slices = {t["name"]: slice(t["start"], t["stop"])
                            for t in self.policy_contract()["observation_terms"]}
        self._noise_width = np.zeros(self._obs_low.shape, dtype=np.float32)
        for name, width in self.randomization.observation_noise.items():
            if name not in self.term_slices:
                raise ValueError(f"observation_noise: unknown term {name!r}; terms: {sorted(self.term_slices)}")
            self._noise_width[self.term_slices[name]] = width
        goal_terms = getattr(task, "goal_terms", None)
        # Hindsight goals change which steps succeed, so an episode that ends on success cannot be
        # relabelled: such envs declare no goal layout.
        if goal_terms is not None and not self.terminate_on_success:
            desired, achieved, relative = goal_terms
            self.goal_layout = GoalLayout(desired=self.term_slices[desired], achieved=self.term_slices[achieved],
                                          relative=tuple(self.term_slices[name] for name in relative))
        self._nominal_masses: dict[int, list[float]] = {}
        self._pending: deque[np.ndarray] = deque()
        self.sample = RandomizationSample()
        # Pairs in a fixed order: the solver then sees contacts in the same order every run.
        self.sim.client.setPhysicsEngineParameter(deterministicOverlappingPairs=1)

    # ----------------------------------------------------------------------------- curriculum

    def set_curriculum_level(self, level: float) -> None:
        """Set the task difficulty in [0, 1] from the next reset on (1 = the full task)."""
        self.curriculum_level = float(np.clip(level, 0.0, 1.0))
        setter = getattr(self.task, "set_curriculum_level", None)
        if callable(setter):
            setter(self.curriculum_level)

    # ----------------------------------------------------------------------------- episode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        gym.Env.reset(self, seed=seed)
        self._forget_contacts()
        self.robot.reset()
        if self.randomization.enabled:
            self.sample = self._randomize(self.np_random)
        self.task.reset(self.np_random)
        self._elapsed_steps = 0
        self._pending = deque(self._neutral_action() for _ in range(self.sample.latency_steps))
        info = self._get_info()
        if self.randomization.enabled:
            info["randomization"] = self.sample
        info["curriculum_level"] = self.curriculum_level
        return self._observe(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._pending:
            self._pending.append(np.array(action, copy=True))
            action = self._pending.popleft()
        _, reward, terminated, truncated, info = super().step(action)
        has_fallen = getattr(self.robot, "has_fallen", None)
        if callable(has_fallen):
            info["fallen"] = bool(has_fallen())
            terminated = terminated or info["fallen"]
        episode_success = getattr(self.task, "episode_success", None)
        if callable(episode_success):
            info["is_success"] = bool(episode_success(self._elapsed_steps * self.sim.control_dt))
        return self._observe(), reward, bool(terminated), truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            view = getattr(self.task, "camera_view", None)
            camera = view() if callable(view) else getattr(self.task, "camera", {})
            return self.sim.render_rgb_array(width=self.render_width, height=self.render_height, **camera)
        return super().render()

    def policy_contract(self) -> dict[str, Any]:
        """As :class:`RobotTaskEnv`'s; a robot without an end effector (a quadruped) names the
        3-vector it reports there through ``ee_term_name``."""
        contract = super().policy_contract()
        name = getattr(self.robot, "ee_term_name", None)
        if name:
            for term in contract["observation_terms"]:
                if term["name"] == "ee_position":
                    term["name"] = name
        return contract

    # ----------------------------------------------------------------------------- internals

    def _observe(self) -> np.ndarray:
        obs = self._get_obs()
        if self.randomization.enabled and np.any(self._noise_width > 0):
            noise = self.np_random.uniform(-1.0, 1.0, obs.shape).astype(np.float32) * self._noise_width
            obs = np.clip(obs + noise, self._obs_low, self._obs_high)
        return obs

    def _forget_contacts(self) -> None:
        """Drop the contact points the bodies that move between episodes (task objects, a
        floating robot base) keep from the last episode.

        pybullet keeps a contact manifold per touching pair and warm-starts the solver from it;
        teleporting a cube that rests on the table to another spot keeps the pair touching, so
        the stale points would make a reused env's episode differ from a fresh env's with the same
        seed. Moving the bodies apart for one collision pass empties those manifolds.
        """
        bodies = list(getattr(self.task, "randomized_bodies", []))
        if getattr(self.robot, "floating_base", False):
            bodies.append(self.robot.body)  # type: ignore[attr-defined]
        if bodies:
            for index, body in enumerate(bodies):
                self.sim.set_base_pose(body, (1000.0 + 10.0 * index, 1000.0, 1000.0))
            self.sim.client.performCollisionDetection()

    def _neutral_action(self) -> np.ndarray:
        neutral = getattr(self.robot, "neutral_action", None)
        if callable(neutral):
            return np.asarray(neutral(), dtype=np.float32)
        return np.zeros(self.action_space.shape or (), dtype=np.float32)

    def _randomize(self, rng: np.random.Generator) -> RandomizationSample:
        """Draw this episode's values (fixed order, from the seeded ``rng``) and apply them."""
        config, client = self.randomization, self.sim.client
        sample = RandomizationSample()
        bodies = {"robot": self.robot.body}  # type: ignore[attr-defined]
        for index, body in enumerate(getattr(self.task, "randomized_bodies", [])):
            bodies[f"object_{index}"] = body
        for name, body in bodies.items():
            if body not in self._nominal_masses:
                links = range(-1, client.getNumJoints(body))
                self._nominal_masses[body] = [client.getDynamicsInfo(body, link)[0] for link in links]
            nominal = self._nominal_masses[body]
            scales = np.asarray(sample_range(rng, config.mass_scale, len(nominal)))
            sample.mass_scale[name] = scales
            for link, (mass, scale) in enumerate(zip(nominal, scales, strict=True), start=-1):
                if mass > 0:  # zero mass marks a static base; scaling would make it dynamic
                    client.changeDynamics(body, link, mass=float(mass * scale))
        if config.friction is not None:
            friction_bodies = {"robot": self.robot.body}  # type: ignore[attr-defined]
            for index, body in enumerate(getattr(self.task, "friction_bodies", [])):
                friction_bodies[f"surface_{index}"] = body
            for name, body in friction_bodies.items():
                value = float(sample_range(rng, config.friction))
                sample.friction[name] = value
                for link in range(-1, client.getNumJoints(body)):
                    client.changeDynamics(body, link, lateralFriction=value)
        set_strength = getattr(self.robot, "set_motor_strength", None)
        if config.motor_strength != (1.0, 1.0):
            if not callable(set_strength):
                raise ValueError(f"{type(self.robot).__name__} cannot randomize motor strength")
            sample.motor_strength = np.asarray(sample_range(rng, config.motor_strength,
                                                            len(self.robot.nominal_forces)))  # type: ignore[attr-defined]
            set_strength(sample.motor_strength)
        low, high = config.latency_steps
        sample.latency_steps = int(rng.integers(low, high + 1)) if high > low else int(low)
        if config.initial_joint_noise > 0:
            rest = np.asarray(self.robot.rest_pose)  # type: ignore[attr-defined]
            width = config.initial_joint_noise
            sample.initial_joint_offsets = rng.uniform(-width, width, rest.shape)
            self.robot.set_joint_positions(rest + sample.initial_joint_offsets)  # type: ignore[attr-defined]
        return sample
