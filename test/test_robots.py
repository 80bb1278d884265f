"""Tests for the robot suite: Panda reach / push / pick-and-place / sort, A1 and Laikago walking,
domain randomization and the curriculum."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import env_render_passive_checker

from drl_ros.core.config_loading import ConfigError
from drl_ros.envs import make_panda_env, make_quadruped_env
from drl_ros.envs.curriculum import Curriculum, CurriculumConfig
from drl_ros.envs.randomization import load_randomization
from drl_ros.envs.suite import ENV_IDS, PANDA_REACH_GOAL_HIGH, PANDA_REACH_GOAL_LOW
from drl_ros.envs.suite_env import SuiteEnv

CONFIG = Path(__file__).resolve().parent.parent / "config" / "randomization"


def _terms(env: SuiteEnv) -> dict[str, slice]:
    return env.term_slices


@pytest.fixture(scope="module")
def a1() -> Iterator[SuiteEnv]:
    env = make_quadruped_env("a1", max_episode_steps=40)
    yield env
    env.close()


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_env_checker_and_rgb_array(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, render_mode="rgb_array", render_width=64, render_height=48)
        try:
            assert env.spec is not None and env.spec.max_episode_steps is None  # the env truncates itself
            check_env(env.unwrapped, skip_render_check=True)
            env.reset(seed=0)
            image = env.render()
            assert isinstance(image, np.ndarray) and image.shape == (48, 64, 3) and image.dtype == np.uint8
            assert image.std() > 0
            env_render_passive_checker(env)
            contract = env.unwrapped.policy_contract()
            assert contract["observation_terms"][-1]["stop"] == env.observation_space.shape[0]
        finally:
            env.close()


@pytest.mark.parametrize("build", [lambda: make_panda_env("push"), lambda: make_quadruped_env("a1")],
                         ids=["push", "a1"])
def test_same_seed_gives_the_same_trajectory_in_fresh_and_reused_envs(build) -> None:  # type: ignore[no-untyped-def]
    envs = [build(), build()]
    try:
        actions = np.random.default_rng(3).uniform(-1, 1, (15, *envs[0].action_space.shape)).astype(np.float32)
        envs[1].reset(seed=99)  # a reused env must not remember its last episode (contacts included)
        for action in actions:
            envs[1].step(-action)
        runs = []
        for env in envs:
            observations = [env.reset(seed=5)[0]]
            observations += [env.step(action)[0] for action in actions]
            runs.append(np.array(observations))
        assert np.array_equal(runs[0], runs[1])
    finally:
        for env in envs:
            env.close()


def test_panda_reach_corners_reachable_and_scripted_reach_succeeds() -> None:
    env = make_panda_env("reach")
    try:
        robot = env.robot
        for corner in itertools.product(*zip(PANDA_REACH_GOAL_LOW, PANDA_REACH_GOAL_HIGH, strict=True)):
            robot.reset()
            for _ in range(20):
                robot.set_joint_positions(robot.inverse_kinematics(np.array(corner)))
            assert np.linalg.norm(robot.ee_position() - corner) < 0.01, corner
        goal_minus_ee = _terms(env)["goal_minus_ee"]
        successes = 0
        for seed in range(8):
            obs, _ = env.reset(seed=seed)
            for _ in range(env.max_episode_steps):
                obs, _, _, _, info = env.step(np.clip(obs[goal_minus_ee] / 0.05, -1, 1))
                if info["is_success"]:
                    successes += 1
                    break
        assert successes == 8
    finally:
        env.close()


def test_gripper_opens_and_closes_and_scripted_pick_and_place_succeeds() -> None:
    env = make_panda_env("pick_place")
    try:
        terms = _terms(env)
        obs, _ = env.reset(seed=1)
        assert env.action_space.shape == (4,)
        assert obs[terms["finger_width"]][0] == pytest.approx(0.08, abs=1e-3)  # starts open
        for _ in range(6):
            obs, *_ = env.step(np.array([0, 0, 0, -1], np.float32))
        assert obs[terms["finger_width"]][0] < 0.005
        for _ in range(6):
            obs, *_ = env.step(np.array([0, 0, 0, 1], np.float32))
        assert obs[terms["finger_width"]][0] > 0.075

        obs, _ = env.reset(seed=2)
        phase, closing = 0, 0
        for _ in range(env.max_episode_steps):
            to_object = obs[terms["object_position"]] - obs[terms["ee_position"]]
            if phase == 0:  # above the cube, open
                move, grip = to_object + [0, 0, 0.04], 1.0
                phase += np.linalg.norm(move) < 0.01
            elif phase == 1:  # down around it
                move, grip = to_object, 1.0
                phase += np.linalg.norm(move) < 0.01
            elif phase == 2:  # close
                move, grip, closing = np.zeros(3), -1.0, closing + 1
                phase += closing >= 4
            else:  # carry it to the goal (in the air)
                move, grip = obs[terms["goal_minus_object"]], -1.0
            action = np.append(np.clip(move / 0.05, -1, 1), grip).astype(np.float32)
            obs, reward, _, _, info = env.step(action)
        assert info["is_success"] and reward == 0.0  # sparse reward: 0 at the goal
        assert env.task.goal[2] > 0.03  # the goal was in the air: the cube was lifted
    finally:
        env.close()


def test_push_and_reach_declare_goal_layouts_for_hindsight_relabelling() -> None:
    env = make_panda_env("push")
    try:
        obs, _ = env.reset(seed=0)
        layout = env.goal_layout
        np.testing.assert_allclose(obs[layout.desired], env.task.goal, atol=1e-6)
        np.testing.assert_allclose(obs[layout.achieved], env.task.object_position(), atol=1e-6)
        relabelled = layout.with_goal(obs[None], obs[None, layout.achieved])
        assert env.compute_reward(relabelled[:, layout.achieved], relabelled[:, layout.desired])[0] == 0.0
        assert env.compute_reward(env.task.goal, env.task.goal + [0.1, 0, 0]) == -1.0
    finally:
        env.close()
    reach = make_panda_env("reach", reward_type="sparse")
    try:
        assert reach.goal_layout.achieved == reach.term_slices["ee_position"]
    finally:
        reach.close()


def test_scripted_sorting_policy_sorts_every_cube() -> None:
    env = make_panda_env("sort")
    try:
        assert env.action_space == gym.spaces.Discrete(6)
        for seed in range(4):
            _, info = env.reset(seed=seed)
            task, n = env.task, env.task.n_objects
            assert not info["is_success"]
            rewards = []
            for i in range(n):
                env.step(i)  # pick(i)
                _, reward, terminated, truncated, info = env.step(n + int(task.target_slots()[i]))
                rewards.append(reward)
            assert info["is_success"] and terminated and not truncated
            assert rewards == pytest.approx([-2 / 3, -1 / 3, 0.0])
        # A wrong bin does not count, a place with an empty gripper does nothing.
        env.reset(seed=0)
        wrong = (int(env.task.target_slots()[0]) + 1) % 3
        env.step(0)
        _, reward, *_ = env.step(n + wrong)
        assert reward == -1.0 and env.task.bin_slots()[0] == wrong
        positions = env.task.object_positions()
        env.step(n)
        np.testing.assert_allclose(env.task.object_positions(), positions, atol=1e-3)
    finally:
        env.close()


def test_quadruped_stands_and_falls(a1: SuiteEnv) -> None:
    assert a1.sim.control_hz == pytest.approx(40.0) and a1.sim.physics_hz == pytest.approx(240.0)
    obs, _ = a1.reset(seed=0)
    terms = _terms(a1)
    np.testing.assert_allclose(obs[terms["base_gravity"]], [0, 0, -1], atol=1e-3)  # upright IMU
    for _ in range(40):
        obs, reward, terminated, truncated, info = a1.step(np.zeros(12, np.float32))
        assert not terminated and 0.0 < reward <= 1.5
    assert truncated and not info["fallen"]
    a1.reset(seed=0)
    client = a1.sim.client
    a1.sim.set_base_pose(a1.robot.body, (0, 0, 0.3), client.getQuaternionFromEuler([1.6, 0, 0]))
    _, _, terminated, _, info = a1.step(np.zeros(12, np.float32))
    assert terminated and info["fallen"] and not info["is_success"]
    names = [t["name"] for t in a1.policy_contract()["observation_terms"]]
    assert "base_position" in names and "ee_position" not in names


def test_walking_is_judged_along_the_heading_at_the_reset(a1: SuiteEnv) -> None:
    obs, _ = a1.reset(seed=0)
    task, client = a1.task, a1.sim.client
    assert obs[a1.term_slices["heading_error"]] == pytest.approx([0.0], abs=1e-3)
    # Turned a quarter left and walking at 0.5 m/s along the new heading (world +y): that is
    # sideways for the task, so the forward term earns nothing for it.
    a1.sim.set_base_pose(a1.robot.body, (0.0, 1.0, 0.27), client.getQuaternionFromEuler([0, 0, np.pi / 2]))
    client.resetBaseVelocity(a1.robot.body, [0.0, 0.5, 0.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(task.get_achieved_goal(), [0.0, 0.5, 0.0], atol=1e-6)
    assert task.heading_error() == pytest.approx(np.pi / 2)
    assert task.mean_forward_speed(2.0) == pytest.approx(0.0, abs=1e-6)  # moved 1 m sideways
    a1.sim.set_base_pose(a1.robot.body, (1.0, 0.0, 0.27), client.getQuaternionFromEuler([0, 0, -3.0]))
    assert task.heading_error() == pytest.approx(-3.0) and task.mean_forward_speed(2.0) == pytest.approx(0.5)


def test_laikago_stands() -> None:
    env = make_quadruped_env("laikago", max_episode_steps=30)
    try:
        env.reset(seed=0)
        for _ in range(30):
            _, _, terminated, _, _ = env.step(np.zeros(12, np.float32))
            assert not terminated
        assert env.robot.base_pose()[0][2] > 0.3
    finally:
        env.close()


def _trot_env(**gait: float) -> SuiteEnv:
    return make_quadruped_env("a1", robot_kwargs={"gait": gait}, max_episode_steps=40,
                              task_kwargs={"command_low": 0.55, "command_high": 0.55})


def test_trot_gait_moves_diagonal_pairs_and_the_action_corrects_it() -> None:
    env = _trot_env(frequency_hz=2.0)
    try:
        check_env(env, skip_render_check=True)
        robot = env.robot
        terms = _terms(env)
        assert terms["gait_phase"] == slice(45, 47) and env.observation_space.shape == (52,)
        obs, _ = env.reset(seed=0)
        np.testing.assert_allclose(obs[terms["gait_phase"]], [0.0, 1.0])  # (sin, cos) of phase 0
        stand = np.asarray(robot.model.stand_pose)
        # Phase 0 at the reference speed: FR and RL at the back of their stride (thigh +0.35 rad),
        # FL and RR at the front (-0.35 rad); no knee lift at the start of a swing.
        offsets = np.array([0.0, 0.35, 0.0, 0.0, -0.35, 0.0, 0.0, -0.35, 0.0, 0.0, 0.35, 0.0])
        action = np.linspace(-0.5, 0.5, 12)
        np.testing.assert_allclose(robot.joint_targets(action), stand + offsets + 0.4 * action, atol=1e-12)
        np.testing.assert_array_equal(robot.last_action, action)
        assert robot.gait_phase == 0.0  # computing targets does not move the gait on
        step = 2 * np.pi * 2.0 / 40.0  # one 25 ms control step of a 2 Hz trot
        robot.advance_gait()
        assert robot.gait_phase == pytest.approx(step)
        quarter = robot.gait.offsets(np.pi / 2, 1.0)  # mid-swing of FR and RL: thigh centred, knee flexed
        np.testing.assert_allclose(quarter[[1, 2, 10, 11]], [0.0, -0.5, 0.0, -0.5], atol=1e-12)
        np.testing.assert_allclose(quarter[[4, 5, 7, 8]], [0.0, 0.0, 0.0, 0.0], atol=1e-12)

        obs, _ = env.reset(seed=0)  # a reset restarts the gait
        for k in range(1, 4):
            obs, *_ = env.step(np.zeros(12, np.float32))
            np.testing.assert_allclose(obs[terms["gait_phase"]], [np.sin(k * step), np.cos(k * step)], atol=1e-6)
        robot.set_gait_command(0.0)  # standing command: stepping in place, no stride
        assert np.all(robot.gait.offsets(0.3, robot._gait_scale)[1::3] == 0.0)
        robot.set_gait_command(10.0)  # a stride never grows beyond max_scale
        assert robot._gait_scale == pytest.approx(robot.gait.max_scale)
        gait = env.policy_contract()["joint_map"]["gait"]
        assert gait["kind"] == "trot" and gait["frequency_hz"] == 2.0 and gait["phase_step_rad"] == pytest.approx(step)
    finally:
        env.close()


def test_trot_gait_walks_on_its_own_and_the_hardware_mirror_commands_the_same_targets() -> None:
    from drl_ros.ros.hardware import KinematicMirror

    env, mirrored = _trot_env(), _trot_env()
    try:
        env.reset(seed=0)
        mirror = KinematicMirror(mirrored)
        mirror.new_goal(np.random.default_rng(0))
        rng = np.random.default_rng(1)
        for step in range(40):
            action = (0.1 * rng.standard_normal(12)).astype(np.float32) if step % 2 else np.zeros(12, np.float32)
            expected = env.robot.joint_targets(action)
            env.step(action)
            if step % 5 == 0:
                # A command superseded within the same control step: the gait must not move twice.
                mirror.joint_targets(-action)
            np.testing.assert_allclose(mirror.joint_targets(action), expected, atol=1e-12)
            mirror.control_step_done()
            assert mirror.robot.gait_phase == pytest.approx(env.robot.gait_phase)
        # The open-loop trot alone carries the robot forward on nominal physics (1 s, from rest).
        assert env.task.mean_forward_speed(40 * env.sim.control_dt) > 0.2
    finally:
        env.close()
        mirrored.close()


def test_bad_gaits_are_refused() -> None:
    with pytest.raises(ValueError, match="frequency_hz"):
        _trot_env(frequency_hz=-1.0)
    with pytest.raises(ConfigError, match="stride"):
        _trot_env(stride=0.3)


def _in(value: object, low: float, high: float) -> bool:
    values = np.asarray(value, dtype=np.float64)
    return bool(np.all((values >= low) & (values <= high)))


def test_randomization_ranges_are_respected_and_seeded() -> None:
    config = load_randomization(CONFIG / "a1_walk.yaml")
    env = make_quadruped_env("a1", randomization=config, max_episode_steps=10)
    other = make_quadruped_env("a1", randomization=str(CONFIG / "a1_walk.yaml"), max_episode_steps=10)
    try:
        client, body = env.sim.client, env.robot.body
        nominal = [client.getDynamicsInfo(body, link)[0] for link in range(-1, client.getNumJoints(body))]
        latencies = set()
        for seed in range(12):
            _, info = env.reset(seed=seed)
            sample = info["randomization"]
            for scales in sample.mass_scale.values():
                assert _in(scales, *config.mass_scale)
            masses = [client.getDynamicsInfo(body, link)[0] for link in range(-1, client.getNumJoints(body))]
            np.testing.assert_allclose(masses, np.array(nominal) * sample.mass_scale["robot"], rtol=1e-6)
            assert set(sample.friction) == {"robot", "surface_0"}
            assert _in(list(sample.friction.values()), *config.friction)
            assert sample.motor_strength.shape == (12,) and _in(sample.motor_strength, *config.motor_strength)
            assert config.latency_steps[0] <= sample.latency_steps <= config.latency_steps[1]
            latencies.add(sample.latency_steps)
            assert _in(sample.initial_joint_offsets, -config.initial_joint_noise, config.initial_joint_noise)
            _, info_other = other.reset(seed=seed)
            np.testing.assert_array_equal(info_other["randomization"].motor_strength, sample.motor_strength)
            assert info_other["randomization"].friction == sample.friction
        assert latencies == {0, 1, 2}
    finally:
        env.close()
        other.close()


def test_latency_delays_actions_and_noise_stays_within_its_width() -> None:
    env = make_quadruped_env("a1", randomization={"latency_steps": [2, 2],
                                                  "observation_noise": {"joint_positions": 0.01}})
    try:
        env.reset(seed=0)
        action = np.full(12, 0.5, np.float32)
        applied = []
        for _ in range(3):
            obs, *_ = env.step(action)
            applied.append(env.robot.last_action.copy())
        np.testing.assert_array_equal(applied[0], 0.0)
        np.testing.assert_array_equal(applied[1], 0.0)
        np.testing.assert_array_equal(applied[2], 0.5)
        clean = env.robot.get_obs()[9:21]
        noise = obs[env.term_slices["joint_positions"]] - clean
        assert np.all(np.abs(noise) <= 0.01 + 1e-5) and np.any(noise != 0)
        np.testing.assert_allclose(obs[env.term_slices["joint_velocities"]], env.robot.get_obs()[21:33], atol=1e-4)
    finally:
        env.close()


def test_bad_randomization_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="mass_scale"):
        load_randomization({"mass_scale": [1.2, 0.8]})
    with pytest.raises(ConfigError, match="unknown field"):
        load_randomization({"masses": [0.8, 1.2]})
    with pytest.raises(ValueError, match="unknown term"):
        make_panda_env("reach", randomization={"observation_noise": {"joint_angles": 0.1}})
    with pytest.raises(ValueError, match="latency"):
        make_panda_env("sort", randomization={"latency_steps": [0, 1]})
    assert load_randomization(CONFIG / "panda_push.yaml").enabled


def test_curriculum_rises_with_success_and_falls_with_failure() -> None:
    curriculum = Curriculum(CurriculumConfig(start_level=0.0, step=0.25, window=4, promote_at=0.75, demote_at=0.25))
    levels = [curriculum.update(True) for _ in range(8)]
    assert levels == [0.0, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 0.5]
    levels = [curriculum.update(False) for _ in range(4)]
    assert levels[-1] == 0.25
    for _ in range(40):
        curriculum.update(True)
    assert curriculum.level == 1.0


def test_curriculum_level_sets_goal_distance_and_commanded_speed(a1: SuiteEnv) -> None:
    env = make_panda_env("reach", curriculum={"start_level": 0.0})
    try:
        assert env.curriculum_level == 0.0 and Curriculum.for_env(env) is not None
        near = [np.linalg.norm(env.reset(seed=s)[0][env.term_slices["goal_minus_ee"]]) for s in range(10)]
        env.set_curriculum_level(1.0)
        far = [np.linalg.norm(env.reset(seed=s)[0][env.term_slices["goal_minus_ee"]]) for s in range(10)]
        assert max(near) < 0.06 and np.mean(far) > 0.15  # level 0: goals at a tenth of the distance
    finally:
        env.close()
    a1.set_curriculum_level(0.5)
    slow = a1.reset(seed=0)[0][a1.term_slices["command_forward_velocity"]][0]
    a1.set_curriculum_level(1.0)
    fast = a1.reset(seed=0)[0][a1.term_slices["command_forward_velocity"]][0]
    assert slow == pytest.approx(fast / 2) and 0.3 <= fast <= 0.8


def test_trainer_drives_the_curriculum_of_the_training_envs_only(tmp_path: Path) -> None:
    from drl_ros.core.config import TrainConfig
    from drl_ros.core.config_loading import load_config
    from drl_ros.runtime.trainer import Trainer

    curriculum = {"start_level": 0.0, "step": 0.5, "window": 2, "promote_at": 1.0, "demote_at": 0.0}
    config = load_config(TrainConfig, {
        "algorithm": "sac", "total_steps": 100, "seed": 0,
        "env": {"id": "drl_ros/PandaReach-v0", "kwargs": {"curriculum": curriculum}},
        "sac": {"hidden_sizes": [8]}, "eval": {"every_steps": 0, "episodes": 1}})
    with Trainer(config, tmp_path / "run", progress=False) as trainer:
        assert trainer.eval_env.unwrapped.curriculum_level == 1.0  # evaluation: the full task
        assert trainer.envs.get_attr("curriculum_level") == (0.0,)

        def episode(success: bool) -> None:
            info = {"final_info": {"is_success": np.array([success]), "_is_success": np.array([True])}}
            trainer._record_step(np.zeros(1), np.array([False]), np.array([True]), info)

        episode(True)
        assert trainer.envs.get_attr("curriculum_level") == (0.0,)
        episode(True)
        assert trainer.curriculum.level == 0.5 and trainer.envs.get_attr("curriculum_level") == (0.5,)
        episode(False)
        episode(False)
        assert trainer.envs.get_attr("curriculum_level") == (0.0,)


def test_eval_video_records_a_rollout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from drl_ros.core.config import TrainConfig
    from drl_ros.core.config_loading import load_config
    from drl_ros.runtime.cli import main as cli_main
    from drl_ros.runtime.trainer import Trainer
    from drl_ros.runtime.video import mp4_available

    run_dir = tmp_path / "run"
    config = load_config(TrainConfig, {
        "algorithm": "sac", "total_steps": 20, "seed": 0,
        "env": {"id": "drl_ros/PandaReach-v0",
                "kwargs": {"render_width": 64, "render_height": 48, "max_episode_steps": 10}},
        "sac": {"hidden_sizes": [8]}, "eval": {"every_steps": 0, "episodes": 1}})
    with Trainer(config, run_dir, progress=False) as trainer:
        trainer.train()
    capsys.readouterr()
    assert cli_main(["eval", str(run_dir), "--video", str(tmp_path / "rollout.gif")]) == 0
    assert "(10 frames)" in capsys.readouterr().out
    gif = (tmp_path / "rollout.gif").read_bytes()
    assert gif[:6] == b"GIF89a"
    from PIL import Image

    with Image.open(tmp_path / "rollout.gif") as image:
        assert image.size == (64, 48) and image.n_frames == 10
    if mp4_available():
        assert cli_main(["eval", str(run_dir), "--video"]) == 0
        assert (run_dir / "eval.mp4").read_bytes()[4:8] == b"ftyp"
