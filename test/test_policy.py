"""The acting policy on its own: action scaling, observation normalization, save/load."""

import numpy as np
import pytest
import torch

from drl_ros.core.normalization import ObservationNormalizer
from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec, DiscreteSpec


def _box(low, high):
    return BoxSpec(tuple(float(v) for v in low), tuple(float(v) for v in high))


def test_actions_are_scaled_to_the_env_bounds_and_back():
    policy = Policy.create(_box([-1] * 4, [1] * 4), _box([-2.0, 0.0], [2.0, 10.0]), "squashed_gaussian", [8], "relu")
    normalized = np.array([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0], [3.0, -7.0]], np.float32)
    env = policy.scale_action(normalized)
    np.testing.assert_allclose(env, [[-2, 0], [0, 5], [2, 10], [2, 0]])
    np.testing.assert_allclose(policy.unscale_action(env[:3]), normalized[:3])


def test_stochastic_and_deterministic_actions_stay_inside_the_bounds():
    torch.manual_seed(0)
    policy = Policy.create(_box([-5] * 3, [5] * 3), _box([-0.5] * 2, [0.5] * 2), "gaussian", [16], "tanh",
                           log_std_init=1.0)
    obs = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32) * 5
    for deterministic in (False, True):
        step = policy.act(obs, deterministic=deterministic)
        assert step.env_action.shape == (256, 2) and step.log_prob.shape == (256,)
        assert np.all(np.abs(step.env_action) <= 0.5)
    # The Gaussian's raw sample (what PPO learns from) is not clipped.
    assert np.abs(policy.act(obs).action).max() > 1.0
    np.testing.assert_array_equal(policy.act(obs, True).action, policy.act(obs, True).action)


def test_single_observation_gives_a_batch_of_one_and_discrete_actions_are_integers():
    policy = Policy.create(_box([-1] * 4, [1] * 4), DiscreteSpec(3), "categorical", [8], "tanh")
    step = policy.act(np.zeros(4, np.float32))
    assert step.env_action.shape == (1,) and step.env_action.dtype == np.int64
    assert 0 <= int(step.env_action[0]) < 3


def test_normalizer_matches_numpy_statistics_over_batches():
    rng = np.random.default_rng(1)
    data = rng.normal(loc=[3.0, -2.0], scale=[0.5, 4.0], size=(1000, 2))
    normalizer = ObservationNormalizer(2)
    for chunk in np.array_split(data, 7):
        normalizer.update(chunk)
    np.testing.assert_allclose(normalizer.mean.numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(normalizer.var.numpy(), data.var(0), rtol=1e-4)
    out = normalizer(torch.tensor(data, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-3)


@pytest.mark.parametrize("kind,action_spec", [("squashed_gaussian", _box([-2], [2])),
                                              ("gaussian", _box([-1, -1], [1, 1])),
                                              ("categorical", DiscreteSpec(4))])
def test_saved_policy_loads_alone_and_acts_identically(tmp_path, kind, action_spec):
    torch.manual_seed(0)
    policy = Policy.create(_box([-10] * 5, [10] * 5), action_spec, kind, [32, 32], "relu",
                           normalize_observations=True)
    obs = np.random.default_rng(2).normal(size=(64, 5)).astype(np.float32) * 3
    policy.normalizer.update(obs)
    policy.version = 7
    policy.save(tmp_path / "policy", {"note": "test"})
    loaded = Policy.load(tmp_path / "policy")
    assert loaded.version == 7
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True).env_action,
                                  policy.act(obs, deterministic=True).env_action)
    torch.manual_seed(5)
    a = policy.act(obs)
    torch.manual_seed(5)
    b = loaded.act(obs)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_allclose(a.log_prob, b.log_prob, rtol=1e-6)
