"""Tests for drl_ros.envs: the Gymnasium API contract, determinism, and that reach is solvable."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import env_render_passive_checker

from drl_ros.envs import KukaIiwa, PyBulletSim, ReachTask, RobotTaskEnv, make_reach_env

ENV_IDS = {"ee_delta": "drl_ros/KukaReach-v0", "joint_delta": "drl_ros/KukaReachJoint-v0"}

# Observation layout of Kuka + Reach (see RobotTaskEnv's docstring).
EE = slice(14, 17)
GOAL = slice(17, 20)
GOAL_MINUS_EE = slice(20, 23)


@pytest.fixture
def reach_env() -> Iterator[RobotTaskEnv]:
    env = make_reach_env()
    yield env
    env.close()


def scripted_action(obs: np.ndarray, max_ee_step: float) -> np.ndarray:
    """Proportional controller: move straight at the goal, saturating at one max step."""
    return np.clip(obs[GOAL_MINUS_EE] / max_ee_step, -1.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("control", ["ee_delta", "joint_delta"])
def test_env_checker_passes_without_warnings(control: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(ENV_IDS[control])
        try:
            # The render check would open every declared mode, "human" included, which needs a
            # display; rgb_array rendering is checked in test_rgb_array_render.
            check_env(env.unwrapped, skip_render_check=True)
        finally:
            env.close()


@pytest.mark.parametrize("control", ["ee_delta", "joint_delta"])
def test_make_truncates_once_at_step_50_without_warnings(control: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(ENV_IDS[control])
        try:
            assert env.spec is not None and env.spec.max_episode_steps is None  # no TimeLimit
            assert env.unwrapped.max_episode_steps == 50
            env.action_space.seed(0)
            env.reset(seed=0)
            truncations = []
            for step in range(1, 51):
                obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
                assert env.observation_space.contains(obs)
                assert not terminated
                if truncated:
                    truncations.append(step)
            assert truncations == [50]
        finally:
            env.close()


def test_spaces_and_observation_layout(reach_env: RobotTaskEnv) -> None:
    assert reach_env.observation_space.shape == (23,)
    assert reach_env.observation_space.dtype == np.float32
    assert reach_env.action_space == gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    obs, info = reach_env.reset(seed=3)
    robot = reach_env.robot
    np.testing.assert_allclose(obs[:7], robot.rest_pose, atol=1e-6)
    np.testing.assert_allclose(obs[7:14], 0.0, atol=1e-6)
    np.testing.assert_allclose(obs[EE], robot.ee_position(), atol=1e-6)
    np.testing.assert_allclose(obs[GOAL], reach_env.task.goal, atol=1e-6)
    np.testing.assert_allclose(obs[GOAL_MINUS_EE], obs[GOAL] - obs[EE], atol=1e-5)
    assert set(info) >= {"is_success", "distance"}

    joint_env = make_reach_env(control="joint_delta")
    try:
        assert joint_env.action_space == gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
    finally:
        joint_env.close()


@pytest.mark.parametrize("control", ["ee_delta", "joint_delta"])
def test_same_seed_same_actions_give_identical_trajectories(control: str) -> None:
    envs = [make_reach_env(control=control) for _ in range(2)]
    try:
        actions = np.random.default_rng(7).uniform(-1, 1, (30, *envs[0].action_space.shape))
        trajectories = []
        for env in envs:
            # Run another episode first: a reused env must not remember its past.
            env.reset(seed=99)
            for action in actions[:10]:
                env.step(-action)
            obs, _ = env.reset(seed=123)
            observations, rewards = [obs], []
            for action in actions.astype(np.float32):
                obs, reward, *_ = env.step(action)
                observations.append(obs)
                rewards.append(reward)
            trajectories.append((np.array(observations), np.array(rewards)))
        (obs_a, rew_a), (obs_b, rew_b) = trajectories
        assert np.array_equal(obs_a, obs_b)
        assert np.array_equal(rew_a, rew_b)
    finally:
        for env in envs:
            env.close()


def test_different_seeds_give_different_goals(reach_env: RobotTaskEnv) -> None:
    goals = [reach_env.reset(seed=seed)[0][GOAL] for seed in range(5)]
    assert len({tuple(goal) for goal in goals}) == 5


def test_reward_is_negative_distance_and_success_matches_threshold(
    reach_env: RobotTaskEnv,
) -> None:
    obs, _ = reach_env.reset(seed=0)
    threshold = reach_env.task.distance_threshold
    max_ee_step = reach_env.robot.max_ee_step
    saw_success = saw_failure = False
    for step in range(1, reach_env.max_episode_steps + 1):
        obs, reward, terminated, truncated, info = reach_env.step(scripted_action(obs, max_ee_step))
        distance = np.linalg.norm(reach_env.robot.ee_position() - reach_env.task.goal)
        assert reward == pytest.approx(-distance, abs=1e-9)
        assert info["distance"] == pytest.approx(distance, abs=1e-9)
        assert info["is_success"] is bool(distance < threshold)
        assert terminated is False  # reaching does not end the episode by default
        assert truncated is (step == reach_env.max_episode_steps)
        saw_success |= info["is_success"]
        saw_failure |= not info["is_success"]
    assert saw_success and saw_failure


def test_terminate_on_success_ends_the_episode() -> None:
    env = make_reach_env(terminate_on_success=True)
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(env.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(
                scripted_action(obs, env.robot.max_ee_step)
            )
            if terminated or truncated:
                break
        assert terminated and info["is_success"] and not truncated
    finally:
        env.close()


def test_compute_reward_and_success_accept_batches(reach_env: RobotTaskEnv) -> None:
    achieved = np.zeros((4, 3))
    desired = np.array([[0.0, 0.0, 0.01], [0.0, 0.0, 0.1], [0.3, 0.4, 0.0], [0.0, 0.0, 0.0]])
    rewards = reach_env.compute_reward(achieved, desired, None)
    np.testing.assert_allclose(rewards, [-0.01, -0.1, -0.5, 0.0])
    np.testing.assert_array_equal(
        reach_env.task.is_success(achieved, desired), [True, False, False, True]
    )


def test_every_corner_of_the_goal_box_is_reachable(reach_env: RobotTaskEnv) -> None:
    robot, task, client = reach_env.robot, reach_env.task, reach_env.sim.client
    for corner in itertools.product(*zip(task.goal_low, task.goal_high, strict=True)):
        robot.reset()
        for _ in range(20):  # iterate IK to convergence, like successive control steps do
            joints = np.clip(
                robot.inverse_kinematics(np.array(corner)), robot.joint_lower, robot.joint_upper
            )
            for joint, position in zip(robot.joint_indices, joints, strict=True):
                client.resetJointState(robot.body, joint, position)
        error = np.linalg.norm(robot.ee_position() - np.array(corner))
        assert error < 0.01, f"corner {corner} missed by {error:.3f} m"


def test_scripted_controller_solves_reach(reach_env: RobotTaskEnv) -> None:
    """A proportional controller reading only the observation reaches >= 95 % of goals."""
    max_ee_step = reach_env.robot.max_ee_step
    steps_to_success = []
    for seed in range(40):
        obs, _ = reach_env.reset(seed=seed)
        for step in range(1, reach_env.max_episode_steps + 1):
            obs, _, _, _, info = reach_env.step(scripted_action(obs, max_ee_step))
            if info["is_success"]:
                steps_to_success.append(step)
                break
    success_rate = len(steps_to_success) / 40
    print(f"scripted success {success_rate:.1%}, median steps {np.median(steps_to_success)}")
    assert success_rate >= 0.95


def test_rgb_array_render() -> None:
    env = make_reach_env(render_mode="rgb_array", render_width=64, render_height=48)
    try:
        env.reset(seed=0)
        image = env.render()
        assert isinstance(image, np.ndarray)
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert image.std() > 0  # something was drawn
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            env_render_passive_checker(env)
    finally:
        env.close()


@pytest.mark.skipif(bool(os.environ.get("DISPLAY")), reason="a display is available")
def test_human_render_without_display_raises_instead_of_exiting() -> None:
    with pytest.raises(RuntimeError, match="display"):
        PyBulletSim(render_mode="human")


def test_robot_and_task_compose_on_one_injected_sim() -> None:
    sim = PyBulletSim(substeps=2)
    try:
        robot = KukaIiwa(sim, control="joint_delta", max_joint_step=0.1)
        task = ReachTask(sim, robot.ee_position, distance_threshold=0.02, add_ground=False)
        env = RobotTaskEnv(robot, task, max_episode_steps=5)
        assert env.metadata["render_fps"] == pytest.approx(120.0)
        env.reset(seed=0)
        truncated = [env.step(env.action_space.sample())[3] for _ in range(5)]
        assert truncated == [False] * 4 + [True]
        other_sim = PyBulletSim()
        try:
            with pytest.raises(ValueError, match="share"):
                RobotTaskEnv(robot, ReachTask(other_sim, robot.ee_position))
        finally:
            other_sim.close()
    finally:
        sim.close()


def test_joint_delta_clips_targets_to_joint_limits() -> None:
    env = make_reach_env(
        control="joint_delta",
        robot_kwargs={"max_joint_step": 0.5},
        task_kwargs={"add_ground": False},  # let the arm fold below z = 0
    )
    try:
        env.reset(seed=0)
        for _ in range(30):
            obs, *_ = env.step(np.ones(7, dtype=np.float32))
        robot = env.robot
        assert np.all(obs[:7] <= robot.joint_upper + 1e-6)
        np.testing.assert_allclose(robot.joint_positions(), robot.joint_upper, atol=0.05)
    finally:
        env.close()
