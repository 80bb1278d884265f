"""PPO and SAC losses on fixed tensors, and the actors' log-probabilities against torch references."""

import math

import pytest
import torch

from drl_ros.core.actors import GaussianActor, SquashedGaussianActor
from drl_ros.core.algorithms.ppo import compute_ppo_policy_loss, compute_ppo_value_loss
from drl_ros.core.algorithms.sac import (
    compute_sac_actor_loss,
    compute_sac_alpha_loss,
    compute_sac_critic_loss,
    compute_sac_target,
)


def test_ppo_clipped_surrogate_on_fixed_tensors():
    log_prob = torch.log(torch.tensor([1.5, 0.5]))
    old_log_prob = torch.zeros(2)
    advantage = torch.tensor([1.0, -1.0])
    loss, clip_fraction, approx_kl = compute_ppo_policy_loss(log_prob, old_log_prob, advantage, 0.2)
    # min(1.5·1, 1.2·1) = 1.2 and min(0.5·−1, 0.8·−1) = −0.8 → loss = −(1.2 − 0.8)/2
    assert loss.item() == pytest.approx(-0.2)
    assert clip_fraction.item() == pytest.approx(1.0)
    expected_kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2
    assert approx_kl.item() == pytest.approx(expected_kl, rel=1e-5)


def test_ppo_surrogate_is_unclipped_inside_the_trust_region():
    log_prob = torch.log(torch.tensor([1.1, 0.95]))
    loss, clip_fraction, _ = compute_ppo_policy_loss(log_prob, torch.zeros(2), torch.tensor([2.0, 4.0]), 0.2)
    assert loss.item() == pytest.approx(-(1.1 * 2 + 0.95 * 4) / 2, rel=1e-6)
    assert clip_fraction.item() == 0.0


def test_ppo_value_loss_with_and_without_clipping():
    value, returns, old = torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([1.0])
    assert compute_ppo_value_loss(value, returns, old, None).item() == pytest.approx(1.0)
    assert compute_ppo_value_loss(value, returns, old, 0.5).item() == pytest.approx(2.25)


def test_sac_target_and_losses_on_fixed_tensors():
    target = compute_sac_target(reward=torch.tensor([1.0, 2.0]), discount=torch.tensor([0.99, 0.0]),
                                next_q=torch.tensor([[3.0, 5.0], [4.0, 1.0]]),
                                next_log_prob=torch.tensor([-1.0, 2.0]), alpha=0.5)
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.99 * 3.5, 2.0]))

    critic_loss = compute_sac_critic_loss(torch.tensor([[4.0, 2.0], [5.0, 1.0]]), target)
    expected = 0.5 * ((0.465 ** 2) / 2 + (0.535 ** 2 + 1.0) / 2)
    assert critic_loss.item() == pytest.approx(expected, rel=1e-5)

    actor_loss = compute_sac_actor_loss(torch.tensor([[1.0, 2.0], [3.0, 0.0]]), torch.tensor([-1.0, 0.5]), 0.2)
    assert actor_loss.item() == pytest.approx((-1.2 + 0.1) / 2)

    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    alpha_loss = compute_sac_alpha_loss(log_alpha, torch.tensor([-1.0, 0.5]), target_entropy=-2.0)
    assert alpha_loss.item() == pytest.approx(-math.log(0.5) * (-3.0 - 1.5) / 2, rel=1e-6)
    alpha_loss.backward()
    # Entropy (−log π ≈ 0.25) is above the target (−2): the temperature must fall.
    assert log_alpha.grad.item() > 0


def test_squashed_gaussian_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(obs_dim=3, act_dim=2, hidden_sizes=[16])
    obs = torch.randn(64, 3)
    torch.manual_seed(1)
    action, log_prob = actor.sample(obs)
    mean, log_std = actor(obs)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform(cache_size=1)])
    torch.manual_seed(1)
    expected_action = reference.rsample()
    torch.testing.assert_close(action, expected_action)
    torch.testing.assert_close(log_prob, reference.log_prob(expected_action).sum(-1), rtol=1e-4, atol=1e-4)
    assert action.abs().max() <= 1.0


def test_gaussian_actor_sample_log_prob_matches_log_prob_entropy():
    torch.manual_seed(0)
    actor = GaussianActor(obs_dim=4, act_dim=3, hidden_sizes=[8], log_std_init=-0.5)
    obs = torch.randn(10, 4)
    action, log_prob = actor.sample(obs)
    again, entropy = actor.log_prob_entropy(obs, action)
    torch.testing.assert_close(log_prob, again)
    expected_entropy = 3 * (0.5 + 0.5 * math.log(2 * math.pi) - 0.5)
    torch.testing.assert_close(entropy, torch.full((10,), expected_entropy))
