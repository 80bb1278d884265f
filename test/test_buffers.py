"""Replay buffer layout, wrap-around, n-step targets and GAE against hand-computed values."""

import numpy as np
import pytest

from drl_ros.core.buffers import ReplayBuffer, compute_gae


def _add(buf, obs, action, reward, next_obs, terminated=False, truncated=False):
    buf.add(np.array([[obs]], np.float32), np.array([[action]], np.float32), np.array([reward], np.float32),
            np.array([[next_obs]], np.float32), np.array([terminated]), np.array([truncated]))


def _transition_at(buf, slot, gamma, n_step):
    batch = buf.gather(np.array([slot]), np.array([0]), gamma, n_step)
    return (float(batch.obs[0, 0]), float(batch.reward[0]), float(batch.next_obs[0, 0]), float(batch.discount[0]))


def test_n_step_targets_match_hand_computed_values():
    buf = ReplayBuffer(capacity=32, obs_dim=1, action_shape=(1,))
    # Episode 1 terminates after three rewards 1, 2, 4.
    _add(buf, 10, 0, 1.0, 11)
    _add(buf, 11, 0, 2.0, 12)
    _add(buf, 12, 0, 4.0, 13, terminated=True)
    # Episode 2 is truncated after rewards 8, 16: its final observation 22 must be bootstrapped.
    _add(buf, 20, 0, 8.0, 21)
    _add(buf, 21, 0, 16.0, 22, truncated=True)
    # Episode 3 is still running.
    _add(buf, 30, 0, 1.0, 31)
    _add(buf, 31, 0, 1.0, 32)
    assert len(buf) == 7
    # Slots: 10 11 12 13 | 20 21 22 | 30 31 32
    assert _transition_at(buf, 0, 0.5, 3) == (10.0, 1 + 0.5 * 2 + 0.25 * 4, 13.0, 0.0)
    assert _transition_at(buf, 1, 0.5, 3) == (11.0, 2 + 0.5 * 4, 13.0, 0.0)
    assert _transition_at(buf, 4, 0.5, 3) == (20.0, 8 + 0.5 * 16, 22.0, 0.25)
    assert _transition_at(buf, 5, 0.5, 3) == (21.0, 16.0, 22.0, 0.5)
    assert _transition_at(buf, 7, 0.5, 3) == (30.0, 1.5, 32.0, 0.25)
    # One-step transitions: bootstrap discount gamma, or 0 on termination.
    assert _transition_at(buf, 2, 0.5, 1) == (12.0, 4.0, 13.0, 0.0)
    assert _transition_at(buf, 5, 0.5, 1) == (21.0, 16.0, 22.0, 0.5)
    assert _transition_at(buf, 0, 0.5, 1) == (10.0, 1.0, 11.0, 0.5)


def test_final_observation_slots_are_never_sampled_as_transition_starts():
    buf = ReplayBuffer(capacity=64, obs_dim=1, action_shape=(1,), seed=1)
    _add(buf, 1, 0, 1.0, 2, truncated=True)
    _add(buf, 5, 0, 1.0, 6, terminated=True)
    batch = buf.sample(500, gamma=0.9)
    assert set(batch.obs[:, 0].tolist()) == {1.0, 5.0}


@pytest.mark.parametrize("num_envs", [1, 3])
def test_wrap_around_keeps_every_sampled_transition_consistent(num_envs):
    capacity = 13 * num_envs
    buf = ReplayBuffer(capacity=capacity, obs_dim=1, action_shape=(1,), num_envs=num_envs, seed=0)
    episode_len = 5
    for episode in range(12):
        for k in range(episode_len):
            obs = np.array([[episode * 100 + k + 10000 * e] for e in range(num_envs)], np.float32)
            buf.add(obs, obs.copy(), obs[:, 0].copy(), obs + 1, np.zeros(num_envs, bool),
                    np.full(num_envs, k == episode_len - 1))
    # 13 slots per env hold at most 13 observations: 2 episodes of 6 slots plus one more slot.
    assert len(buf) == int(buf.has_action.sum())
    assert len(buf) <= capacity
    assert len(buf) >= capacity - 3 * num_envs
    batch = buf.sample(2000, gamma=0.9)
    obs = batch.obs[:, 0].numpy()
    np.testing.assert_array_equal(batch.action[:, 0].numpy(), obs)
    np.testing.assert_array_equal(batch.reward.numpy(), obs)
    np.testing.assert_array_equal(batch.next_obs[:, 0].numpy(), obs + 1)
    np.testing.assert_allclose(batch.discount.numpy(), 0.9)
    # Only the newest episodes survive the wrap-around.
    assert (obs % 10000 >= 1000).all()


def test_buffer_state_round_trip_preserves_samples():
    buf = ReplayBuffer(capacity=20, obs_dim=2, action_shape=(1,), seed=3)
    rng = np.random.default_rng(0)
    for t in range(30):
        buf.add(rng.normal(size=(1, 2)).astype(np.float32), rng.normal(size=(1, 1)).astype(np.float32),
                rng.normal(size=1).astype(np.float32), rng.normal(size=(1, 2)).astype(np.float32),
                np.array([t % 7 == 6]), np.array([False]))
    arrays, state = buf.state_dict()
    copy = ReplayBuffer(capacity=20, obs_dim=2, action_shape=(1,), seed=99)
    copy.load_state_dict({k: v.copy() for k, v in arrays.items()}, state)
    a, b = buf.sample(64, 0.99, 3), copy.sample(64, 0.99, 3)
    for name in ("obs", "action", "reward", "next_obs", "discount"):
        np.testing.assert_array_equal(getattr(a, name).numpy(), getattr(b, name).numpy())


def test_gae_matches_hand_computed_values():
    rewards = np.array([[1.0], [2.0], [3.0]], np.float32)
    values = np.array([[0.5], [0.6], [0.7]], np.float32)
    next_values = np.array([[0.6], [0.7], [0.8]], np.float32)
    none = np.zeros((3, 1), bool)
    adv, ret = compute_gae(rewards, values, next_values, none, none, gamma=0.9, gae_lambda=0.8)
    np.testing.assert_allclose(adv[:, 0], [4.067168, 4.2044, 3.02], rtol=1e-5)
    np.testing.assert_allclose(ret, adv + values, rtol=1e-6)

    # Terminated at step 1: no bootstrap there, and the trace does not cross into step 2.
    terminated = np.array([[False], [True], [False]])
    adv, _ = compute_gae(rewards, values, next_values, terminated, none, gamma=0.9, gae_lambda=0.8)
    np.testing.assert_allclose(adv[:, 0], [1.04 + 0.72 * 1.4, 1.4, 3.02], rtol=1e-5)

    # Truncated at step 1: bootstrap from V(final observation) = 5, and cut the trace.
    truncated = np.array([[False], [True], [False]])
    nv = next_values.copy()
    nv[1, 0] = 5.0
    adv, _ = compute_gae(rewards, values, nv, none, truncated, gamma=0.9, gae_lambda=0.8)
    np.testing.assert_allclose(adv[:, 0], [1.04 + 0.72 * 5.9, 5.9, 3.02], rtol=1e-5)


def test_gae_lambda_one_is_discounted_monte_carlo_return():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(6, 2)).astype(np.float32)
    values = rng.normal(size=(6, 2)).astype(np.float32)
    next_values = np.vstack([values[1:], np.zeros((1, 2), np.float32)])
    terminated = np.zeros((6, 2), bool)
    terminated[-1] = True
    _, ret = compute_gae(rewards, values, next_values, terminated, np.zeros_like(terminated), 0.95, 1.0)
    expected = np.zeros(2)
    for t in reversed(range(6)):
        expected = rewards[t] + 0.95 * expected
        np.testing.assert_allclose(ret[t], expected, rtol=1e-5)
