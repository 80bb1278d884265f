"""Hindsight relabelling on hand-built episodes, and the goal-conditioned reach env it is made for."""

import gymnasium as gym
import numpy as np
import pytest

from drl_ros.core.her import GoalLayout, HerConfig, HerReplayBuffer, sample_goal_slots

# Observation: [achieved goal (2), desired goal (2), desired - achieved (2)].
LAYOUT = GoalLayout(desired=slice(2, 4), achieved=slice(0, 2), relative=(slice(4, 6),))
STORED_GOAL = np.array([99.0, 99.0])


def sparse_reward(achieved, desired, info):
    assert info is None
    return -(np.linalg.norm(achieved - desired, axis=-1) > 0.1).astype(np.float32)


def _obs(achieved):
    achieved = np.asarray(achieved, dtype=np.float32)
    return np.concatenate([achieved, STORED_GOAL, STORED_GOAL - achieved]).astype(np.float32)


def _fill(buffer, episodes, open_episode=None, env=0, num_envs=1):
    """Add episodes whose step-t achieved goal is ``(t, episode id)``; each list gives (id, length)."""
    def step(obs_a, next_a, done):
        obs = np.zeros((num_envs, 6), np.float32)
        nxt = np.zeros((num_envs, 6), np.float32)
        obs[env], nxt[env] = _obs(obs_a), _obs(next_a)
        truncated = np.zeros(num_envs, bool)
        truncated[env] = done
        buffer.add(obs, np.zeros((num_envs, 1), np.float32), np.full(num_envs, -1.0, np.float32), nxt,
                   np.zeros(num_envs, bool), truncated)
    for ep, length in episodes:
        for t in range(length):
            step((t, ep), (t + 1, ep), t == length - 1)
    if open_episode is not None:
        ep, length = open_episode
        for t in range(length):
            step((t, ep), (t + 1, ep), False)


def _buffer(strategy="future", k=4, capacity=64, num_envs=1, seed=0):
    return HerReplayBuffer(capacity, 6, (1,), LAYOUT, sparse_reward, HerConfig(strategy=strategy, k=k),
                           num_envs=num_envs, seed=seed)


def _check_relabelled(batch):
    obs, nxt, reward = batch.obs.numpy(), batch.next_obs.numpy(), batch.reward.numpy()
    relabelled = np.any(obs[:, 2:4] != STORED_GOAL, axis=1)
    # Each transition carries the same goal in obs and next_obs, the relative terms follow it, and the
    # reward is the env's reward for the next achieved goal against that goal.
    np.testing.assert_array_equal(obs[:, 2:4], nxt[:, 2:4])
    np.testing.assert_allclose(obs[:, 4:6], obs[:, 2:4] - obs[:, 0:2], atol=1e-6)
    np.testing.assert_allclose(nxt[:, 4:6], nxt[:, 2:4] - nxt[:, 0:2], atol=1e-6)
    np.testing.assert_array_equal(reward[relabelled], sparse_reward(nxt[relabelled, 0:2], nxt[relabelled, 2:4], None))
    np.testing.assert_array_equal(reward[~relabelled], -1.0)
    return obs, nxt, relabelled


def test_future_strategy_picks_goals_achieved_later_in_the_same_episode():
    buffer = _buffer("future", k=4)
    _fill(buffer, [(1, 5), (2, 3), (3, 6)])
    batch = buffer.sample(2000)
    obs, _, relabelled = _check_relabelled(batch)
    assert 0.75 < relabelled.mean() < 0.85  # k / (k + 1) = 0.8
    t, episode = obs[relabelled, 0], obs[relabelled, 1]
    goal_t, goal_episode = obs[relabelled, 2], obs[relabelled, 3]
    np.testing.assert_array_equal(goal_episode, episode)  # never another episode's goal
    assert np.all(goal_t >= t + 1)  # strictly later observations: from the next one on...
    lengths = {1: 5, 2: 3, 3: 6}
    assert np.all(goal_t <= np.vectorize(lengths.get)(episode))  # ...up to the final one
    # Every later goal is drawn: from t=0 of a 5-step episode, goals 1..5 all occur.
    first = (episode == 1) & (t == 0)
    assert set(goal_t[first]) == {1.0, 2.0, 3.0, 4.0, 5.0}
    # The next observation's own goal is among them, so some relabelled rewards are successes.
    assert (batch.reward.numpy()[relabelled] == 0.0).any()


def test_final_strategy_picks_the_episodes_last_achieved_goal():
    buffer = _buffer("final", k=1)
    _fill(buffer, [(1, 5), (2, 3)])
    obs, _, relabelled = _check_relabelled(buffer.sample(500))
    assert 0.4 < relabelled.mean() < 0.6
    episode, goal = obs[relabelled, 1], obs[relabelled, 2:4]
    np.testing.assert_array_equal(goal[:, 0], np.where(episode == 1, 5.0, 3.0))
    np.testing.assert_array_equal(goal[:, 1], episode)


def test_an_episode_in_progress_is_not_relabelled_and_k0_never_relabels():
    buffer = _buffer("future", k=4)
    _fill(buffer, [(1, 3)], open_episode=(2, 4))
    obs, _, relabelled = _check_relabelled(buffer.sample(1000))
    assert not relabelled[obs[:, 1] == 2].any()
    assert relabelled[obs[:, 1] == 1].mean() > 0.7
    plain = _buffer("future", k=0)
    _fill(plain, [(1, 3)])
    assert not _check_relabelled(plain.sample(200))[2].any()


def test_goals_stay_within_each_env_stream_and_survive_ring_wraparound():
    buffer = _buffer("future", k=4, capacity=2 * 12, num_envs=2)
    # Two envs stepped together, 12 slots each. Env 0: three 4-step episodes (15 slots: its stream
    # wraps and the first episode is partly overwritten); env 1: episodes of 5 and 7 steps.
    schedule = [[(1, 4), (2, 4), (3, 4)], [(7, 5), (8, 7)]]
    steps = [[(ep, t, t == n - 1) for ep, n in episodes for t in range(n)] for episodes in schedule]
    for (ep0, t0, d0), (ep1, t1, d1) in zip(*steps):
        buffer.add(np.stack([_obs((t0, ep0)), _obs((t1, ep1))]), np.zeros((2, 1), np.float32),
                   np.full(2, -1.0, np.float32), np.stack([_obs((t0 + 1, ep0)), _obs((t1 + 1, ep1))]),
                   np.zeros(2, bool), np.array([d0, d1]))
    obs, _, relabelled = _check_relabelled(buffer.sample(3000))
    np.testing.assert_array_equal(obs[relabelled, 3], obs[relabelled, 1])  # same episode, same env
    assert np.all(obs[relabelled, 2] > obs[relabelled, 0])
    lengths = {1: 4, 2: 4, 3: 4, 7: 5, 8: 7}
    assert np.all(obs[relabelled, 2] <= np.vectorize(lengths.get)(obs[relabelled, 1]))
    # What is left of the overwritten episode still relabels within itself, from its surviving slots.
    survivors = obs[:, 1] == 1
    assert survivors.any() and np.all(obs[survivors, 0] >= 3)
    assert {1.0, 2.0, 3.0, 7.0, 8.0} == set(obs[relabelled, 1])


def test_goal_slot_sampling_wraps_around_the_ring():
    rng = np.random.default_rng(0)
    slots = sample_goal_slots(np.array([9] * 200), np.array([2] * 200), 10, "future", rng)
    assert set(slots) == {0, 1, 2}
    assert list(sample_goal_slots(np.array([9]), np.array([2]), 10, "final", rng)) == [2]


def test_her_buffer_state_round_trips_and_refuses_n_step():
    buffer = _buffer()
    _fill(buffer, [(1, 4)], open_episode=(2, 2))
    arrays, state = buffer.state_dict()
    copy = _buffer(seed=5)
    copy.load_state_dict({k: np.array(v) for k, v in arrays.items()}, state)
    a, b = buffer.sample(64), copy.sample(64)
    np.testing.assert_array_equal(a.obs.numpy(), b.obs.numpy())
    np.testing.assert_array_equal(a.reward.numpy(), b.reward.numpy())
    with pytest.raises(ValueError, match="n_step"):
        buffer.sample(8, n_step=3)


def test_goal_layout_refuses_slices_of_another_width():
    with pytest.raises(ValueError):
        GoalLayout(desired=slice(0, 3), achieved=slice(3, 5))


def test_goal_reach_env_declares_its_goals_and_a_sparse_vectorized_reward():
    import drl_ros.envs  # noqa: F401  (registers the ids)

    env = gym.make("drl_ros/KukaReachGoal-v0")
    try:
        goal_env = env.unwrapped
        layout = goal_env.goal_layout
        obs, info = env.reset(seed=0)
        for _ in range(3):
            obs, reward, terminated, _, info = env.step(env.action_space.sample())
            np.testing.assert_allclose(obs[layout.achieved], goal_env.robot.ee_position(), atol=1e-5)
            np.testing.assert_allclose(obs[layout.desired], goal_env.task.goal, atol=1e-5)
            np.testing.assert_allclose(obs[layout.relative[0]], obs[layout.desired] - obs[layout.achieved], atol=1e-5)
            assert reward == (0.0 if info["is_success"] else -1.0) and not terminated
            assert goal_env.compute_reward(obs[layout.achieved], obs[layout.desired], None) == reward
        achieved = np.stack([obs[layout.achieved]] * 2)
        desired = np.stack([obs[layout.desired], obs[layout.achieved] + [0.0, 0.0, 0.01]])
        np.testing.assert_array_equal(goal_env.compute_reward(achieved, desired, None), [-1.0, 0.0])
    finally:
        env.close()
