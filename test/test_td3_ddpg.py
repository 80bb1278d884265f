"""TD3 and DDPG: targets on fixed tensors, delayed updates, exploration noise, the deterministic actor."""

import numpy as np
import pytest
import torch

from drl_ros.core.algorithms.ddpg import DDPG, DDPGConfig, compute_ddpg_target
from drl_ros.core.algorithms.td3 import (
    TD3,
    TD3Config,
    compute_td3_actor_loss,
    compute_td3_critic_loss,
    compute_td3_target,
    compute_td3_target_action,
)
from drl_ros.core.buffers import ReplayBatch
from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec

OBS = BoxSpec((-1.0,) * 3, (1.0,) * 3)
ACT = BoxSpec((-2.0, 0.0), (2.0, 1.0))


def test_target_policy_smoothing_clips_the_noise_then_the_action():
    next_action = torch.tensor([[0.0, 0.9], [-0.8, 0.2]])
    noise = torch.tensor([[0.3, 0.7], [-0.9, 0.1]])
    smoothed = compute_td3_target_action(next_action, noise, noise_clip=0.5)
    # noise → [[0.3, 0.5], [-0.5, 0.1]]; then the sum is clipped to the action bounds [-1, 1].
    torch.testing.assert_close(smoothed, torch.tensor([[0.3, 1.0], [-1.0, 0.3]]))


def test_clipped_double_q_target_takes_the_smaller_critic():
    target = compute_td3_target(reward=torch.tensor([1.0, -1.0, 0.5]), discount=torch.tensor([0.9, 0.0, 0.81]),
                                next_q=torch.tensor([[2.0, 7.0, -1.0], [3.0, 5.0, -2.0]]))
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.9 * 2.0, -1.0, 0.5 + 0.81 * -2.0]))
    critic_loss = compute_td3_critic_loss(torch.tensor([[2.8, -1.0, -1.12], [2.8, 0.0, -1.12]]), target)
    assert critic_loss.item() == pytest.approx(0.0 + 1.0 / 3, abs=1e-6)  # per-critic MSE, summed
    assert compute_td3_actor_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_ddpg_target_bootstraps_one_critic_unless_terminated():
    target = compute_ddpg_target(torch.tensor([1.0, 2.0]), torch.tensor([0.99, 0.0]), torch.tensor([10.0, 10.0]))
    torch.testing.assert_close(target, torch.tensor([1.0 + 9.9, 2.0]))


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ReplayBatch(obs=torch.randn(n, 3, generator=g), action=torch.rand(n, 2, generator=g) * 2 - 1,
                       reward=torch.randn(n, generator=g), next_obs=torch.randn(n, 3, generator=g),
                       discount=torch.full((n,), 0.99), indices=np.arange(n))


def test_td3_target_uses_target_networks_smoothing_and_the_minimum():
    torch.manual_seed(0)
    algo = TD3(OBS, ACT, TD3Config(hidden_sizes=[16]))
    batch = _batch()
    torch.manual_seed(5)
    target = algo._target(batch, batch.next_obs)
    torch.manual_seed(5)
    mu = algo.actor_target(batch.next_obs)
    noise = 0.2 * torch.randn_like(mu)
    action = (mu + noise.clamp(-0.5, 0.5)).clamp(-1, 1)
    q = algo.critic_target(torch.cat([batch.next_obs, action], -1))
    torch.testing.assert_close(target, batch.reward + 0.99 * q.min(0).values)


def test_ddpg_target_has_no_smoothing_and_one_critic():
    torch.manual_seed(0)
    algo = DDPG(OBS, ACT, DDPGConfig(hidden_sizes=[16]))
    assert algo.critic.n == 1
    batch = _batch()
    q = algo.critic_target(torch.cat([batch.next_obs, algo.actor_target(batch.next_obs)], -1)).reshape(-1)
    torch.testing.assert_close(algo._target(batch, batch.next_obs), batch.reward + 0.99 * q)


def test_td3_moves_the_actor_and_targets_only_every_policy_delay_steps():
    torch.manual_seed(0)
    algo = TD3(OBS, ACT, TD3Config(hidden_sizes=[16], policy_delay=2))
    actor_before = [p.detach().clone() for p in algo.policy.actor.parameters()]
    target_before = [p.detach().clone() for p in algo.critic_target.parameters()]
    metrics = algo.update(_batch())
    assert "actor_loss" not in metrics
    assert all(torch.equal(a, b) for a, b in zip(actor_before, algo.policy.actor.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(target_before, algo.critic_target.parameters()))
    metrics = algo.update(_batch(seed=1))
    assert "actor_loss" in metrics and algo.updates == 2 and algo.actor_updates == 1
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, algo.policy.actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(target_before, algo.critic_target.parameters()))


def test_exploration_noise_is_gaussian_around_the_deterministic_action_and_clipped():
    torch.manual_seed(0)
    algo = TD3(OBS, ACT, TD3Config(hidden_sizes=[16], action_noise=0.3))
    obs = np.zeros((4000, 3), dtype=np.float32)
    step = algo.collect_action(obs, steps=0)
    mean = algo.policy.act(obs[:1], deterministic=True).action[0]
    assert np.abs(step.action).max() <= 1.0
    np.testing.assert_allclose(step.action.std(axis=0), 0.3, rtol=0.1)
    np.testing.assert_allclose(step.action.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(step.env_action, algo.policy.scale_action(step.action))


def test_deterministic_policy_round_trips_through_its_file(tmp_path):
    torch.manual_seed(0)
    algo = DDPG(OBS, ACT, DDPGConfig(hidden_sizes=[8, 8]))
    algo.policy.save(tmp_path / "policy")
    loaded = Policy.load(tmp_path / "policy")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(obs).env_action, algo.policy.act(obs).env_action)
    # A deterministic policy samples its mean: acting is the same with or without `deterministic`.
    np.testing.assert_array_equal(loaded.act(obs).action, loaded.act(obs, deterministic=True).action)
