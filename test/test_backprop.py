"""The hand-written gradients of drl_ros.core.backprop, SAC, PPO, TD3 and DDPG against autograd's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from drl_ros.core.algorithms.base import Algorithm, polyak_update
from drl_ros.core.algorithms.ddpg import DDPG, DDPGConfig
from drl_ros.core.algorithms.ppo import PPO, PPOConfig, compute_ppo_policy_loss, compute_ppo_value_loss, normalize_advantages
from drl_ros.core.algorithms.sac import (
    SAC,
    SACConfig,
    compute_sac_actor_loss,
    compute_sac_alpha_loss,
    compute_sac_critic_loss,
    compute_sac_target,
)
from drl_ros.core.algorithms.td3 import (
    TD3,
    TD3Config,
    compute_td3_actor_loss,
    compute_td3_critic_loss,
    compute_td3_target,
    compute_td3_target_action,
)
from drl_ros.core.backprop import MLPBackprop, adam_step, all_finite_no_grad
from drl_ros.core.buffers import ReplayBatch
from drl_ros.core.networks import ACTIVATIONS, EnsembleMLP, mlp
from drl_ros.core.spaces import BoxSpec, DiscreteSpec


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("ensemble", [False, True])
def test_mlp_backprop_matches_autograd(activation: str, ensemble: bool) -> None:
    torch.manual_seed(0)
    net = EnsembleMLP(3, 5, [16, 8], activation) if ensemble else mlp(5, [16, 8], 4, activation)
    sequential = net.net if ensemble else net
    x = torch.randn(7, 5, requires_grad=True)
    grad_out = torch.randn(3, 7, 1) if ensemble else torch.randn(7, 4)
    out = sequential(x)
    (out * grad_out).sum().backward()

    backprop = MLPBackprop(sequential)
    with torch.no_grad():
        manual_out, tape = backprop.forward(x.detach())
        torch.testing.assert_close(backprop.predict(x.detach()), manual_out, rtol=0, atol=0)
        grads, grad_input = backprop.backward(tape, grad_out, input_grad=True)
    torch.testing.assert_close(manual_out, out.detach())
    assert len(grads) == len(list(net.parameters()))
    for grad, param in zip(grads, net.parameters()):
        assert grad.shape == param.shape
        torch.testing.assert_close(grad, param.grad, rtol=1e-5, atol=1e-6)
    assert grad_input is not None
    torch.testing.assert_close(grad_input, x.grad, rtol=1e-5, atol=1e-6)


def test_mlp_backprop_input_gradient_alone_and_a_network_ending_in_an_activation() -> None:
    torch.manual_seed(1)
    trunk = mlp(4, [8, 8], None, "tanh")  # ends with its activation, as an actor's trunk does
    x = torch.randn(6, 4, requires_grad=True)
    trunk(x).pow(2).sum().backward()
    backprop = MLPBackprop(trunk)
    with torch.no_grad():
        out, tape = backprop.forward(x.detach())
        grads, grad_input = backprop.backward(tape, 2 * out, param_grads=False, input_grad=True)
    assert grads == []
    assert grad_input is not None
    torch.testing.assert_close(grad_input, x.grad)


@pytest.mark.parametrize("net", [nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 1)),
                                 nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1)),
                                 nn.Sequential(nn.Linear(3, 4), nn.ELU(alpha=0.5), nn.Linear(4, 1))])
def test_mlp_backprop_refuses_networks_it_cannot_differentiate(net: nn.Sequential) -> None:
    with pytest.raises(ValueError, match="hand-written backprop"):
        MLPBackprop(net)


def test_adam_step_equals_adam_step_and_its_state_carries_on() -> None:
    torch.manual_seed(2)
    nets = [mlp(3, [8], 2, "relu"), mlp(3, [8], 1, "relu")]
    copies = copy.deepcopy(nets)
    # Two learning rates: two kernel calls; the same rate would share one.
    reference = [torch.optim.Adam(n.parameters(), lr=lr, fused=True) for n, lr in zip(nets, (1e-2, 3e-3))]
    manual = [torch.optim.Adam(n.parameters(), lr=lr, fused=True) for n, lr in zip(copies, (1e-2, 3e-3))]
    for step in range(4):
        x = torch.randn(5, 3)
        for group in (nets, copies):
            for net in group:
                net.zero_grad()
                net(x).pow(2).sum().backward()
        for optimizer in reference:
            optimizer.step()
        adam_step([(optimizer, [p.grad for p in net.parameters()]) for optimizer, net in zip(manual, copies)])
        if step == 1:
            # The state adam_step writes is Adam's own: a plain step() continues from it.
            manual[0].step()
            reference[0].step()
    for net, twin in zip(nets, copies):
        for a, b in zip(net.parameters(), twin.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    for ours, theirs in zip(manual, reference):
        ours_state, their_state = ours.state_dict()["state"], theirs.state_dict()["state"]
        assert ours_state.keys() == their_state.keys()
        for index in ours_state:
            for key in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(ours_state[index][key], their_state[index][key], rtol=0, atol=0)


def test_adam_step_refuses_what_it_does_not_implement() -> None:
    param = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="fused Adam"):
        adam_step([(torch.optim.Adam([param], lr=1e-3), [torch.zeros(2)])])
    with pytest.raises(ValueError, match="fused Adam"):
        adam_step([(torch.optim.Adam([param], lr=1e-3, fused=True, amsgrad=True), [torch.zeros(2)])])
    with pytest.raises(ValueError, match="1 gradients for 2"):
        adam_step([(torch.optim.Adam([param, nn.Parameter(torch.zeros(1))], lr=1e-3, fused=True), [torch.zeros(2)])])


def test_all_finite_no_grad() -> None:
    assert all_finite_no_grad([torch.zeros(3), torch.ones(()), torch.full((2, 2), 1e30)])
    assert not all_finite_no_grad([torch.zeros(3), torch.tensor([1.0, float("nan")])])
    assert not all_finite_no_grad([torch.tensor(float("-inf"))])


# -- SAC ------------------------------------------------------------------------------------------


def _autograd_sac_update(sac: SAC, batch: ReplayBatch) -> None:
    """SAC's update written with autograd: the reference for the hand-written one."""
    policy = sac.policy
    obs, next_obs, alpha = policy.normalize(batch.obs), policy.normalize(batch.next_obs), sac.alpha
    with torch.no_grad():
        next_action, next_log_prob = policy.actor.sample(next_obs)
        next_q = sac.critic_target(torch.cat([next_obs, next_action], dim=-1))
        target = compute_sac_target(batch.reward, batch.discount, next_q, next_log_prob, alpha)
    critic_loss = compute_sac_critic_loss(sac.critic(torch.cat([obs, batch.action], dim=-1)), target)
    sac.critic.requires_grad_(False)
    action, log_prob = policy.actor.sample(obs)
    actor_loss = compute_sac_actor_loss(sac.critic(torch.cat([obs, action], dim=-1)), log_prob, alpha)
    sac.critic.requires_grad_(True)
    alpha_loss = compute_sac_alpha_loss(sac.log_alpha, log_prob, sac.target_entropy)
    optimizers = (sac.critic_optimizer, sac.actor_optimizer, sac.alpha_optimizer)
    for optimizer in optimizers:
        optimizer.zero_grad()
    (critic_loss + actor_loss + alpha_loss).backward()
    for optimizer in optimizers:
        optimizer.step()
    polyak_update(list(sac.critic.parameters()), list(sac.critic_target.parameters()), sac.config.tau)


OFF_POLICY_OBS = BoxSpec(low=np.full(5, -8.0), high=np.full(5, 8.0))
OFF_POLICY_ACT = BoxSpec(low=np.full(2, -2.0), high=np.full(2, 2.0))


def _replay_batches(count: int) -> list[ReplayBatch]:
    generator = torch.Generator().manual_seed(1)
    return [ReplayBatch(torch.randn(64, 5, generator=generator), torch.rand(64, 2, generator=generator) * 2 - 1,
                        -torch.rand(64, generator=generator), torch.randn(64, 5, generator=generator),
                        torch.full((64,), 0.99), np.arange(64)) for _ in range(count)]


def _assert_same_parameters(ours: Algorithm, reference: Algorithm) -> None:
    for name, module in ours.modules().items():
        for (param_name, mine), theirs in zip(module.named_parameters(), reference.modules()[name].parameters()):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6, msg=f"{name}.{param_name}")


@pytest.mark.parametrize(("activation", "hidden"), [("relu", [32, 32]), ("tanh", [16]), ("relu", [])])
def test_sac_update_matches_autograd(activation: str, hidden: list[int]) -> None:
    torch.manual_seed(0)
    manual = SAC(OFF_POLICY_OBS, OFF_POLICY_ACT, SACConfig(hidden_sizes=hidden, activation=activation, batch_size=64))
    reference = copy.deepcopy(manual)
    for update, batch in enumerate(_replay_batches(10)):
        torch.manual_seed(100 + update)  # the same policy noise for both
        _autograd_sac_update(reference, batch)
        torch.manual_seed(100 + update)
        metrics = manual.update(batch)
        assert set(metrics) == {"critic_loss", "actor_loss", "alpha", "entropy", "q"}
    assert manual.updates == 10
    _assert_same_parameters(manual, reference)


# -- PPO ------------------------------------------------------------------------------------------


def _autograd_ppo_gradients(ppo: PPO, obs: torch.Tensor, action: torch.Tensor, old_log_prob: torch.Tensor,
                            advantage: torch.Tensor, returns: torch.Tensor, old_value: torch.Tensor) -> list[torch.Tensor]:
    cfg = ppo.config
    log_prob, entropy = ppo.policy.actor.log_prob_entropy(obs, action)
    policy_loss, _, _ = compute_ppo_policy_loss(log_prob, old_log_prob, normalize_advantages(advantage), 0.2)
    value_loss = compute_ppo_value_loss(ppo.critic(obs).squeeze(-1), returns, old_value, cfg.clip_range_vf)
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy.mean()
    ppo.optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(ppo._params, cfg.max_grad_norm)
    return [p.grad for p in ppo._params]


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("options", [{}, {"ent_coef": 0.05, "clip_range_vf": 0.1}, {"max_grad_norm": 1e3}])
def test_ppo_minibatch_gradients_match_autograd(discrete: bool, options: dict[str, float]) -> None:
    torch.manual_seed(3)
    obs_spec = BoxSpec(low=np.full(4, -5.0), high=np.full(4, 5.0))
    act_spec = DiscreteSpec(3) if discrete else BoxSpec(low=np.full(2, -1.0), high=np.full(2, 1.0))
    ppo = PPO(obs_spec, act_spec, PPOConfig(hidden_sizes=[16, 16], **options))
    obs = torch.randn(64, 4)
    action = torch.randint(0, 3, (64,)) if discrete else torch.randn(64, 2)
    with torch.no_grad():
        log_prob, _ = ppo.policy.actor.log_prob_entropy(obs, action)
    # Ratios spread well past the clip range on both sides, and old values the clip reaches.
    old_log_prob = log_prob + 0.4 * torch.randn(64)
    advantage, returns, old_value = torch.randn(64), torch.randn(64), 0.2 * torch.randn(64)
    expected = _autograd_ppo_gradients(ppo, obs, action, old_log_prob, advantage, returns, old_value)
    step = ppo._minibatch_step(obs, action, old_log_prob, normalize_advantages(advantage), returns, old_value, 0.2)
    assert step is not None
    assert len(step["grads"]) == len(expected)
    for ours, theirs in zip(step["grads"], expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


# -- TD3 and DDPG ---------------------------------------------------------------------------------


def _autograd_td3_update(td3: TD3, batch: ReplayBatch) -> None:
    """TD3's (and DDPG's) update written with autograd: the reference for the hand-written one."""
    cfg, policy = td3.config, td3.policy
    obs, next_obs = policy.normalize(batch.obs), policy.normalize(batch.next_obs)
    with torch.no_grad():
        next_action = td3.actor_target(next_obs)
        if td3.smoothing:
            noise = cfg.target_policy_noise * torch.randn_like(next_action)
            next_action = compute_td3_target_action(next_action, noise, cfg.target_noise_clip)
        next_q = td3.critic_target(torch.cat([next_obs, next_action], dim=-1)).reshape(td3.n_critics, -1)
        target = compute_td3_target(batch.reward, batch.discount, next_q)
    q = td3.critic(torch.cat([obs, batch.action], dim=-1)).reshape(td3.n_critics, -1)
    td3.critic_optimizer.zero_grad()
    compute_td3_critic_loss(q, target).backward()
    td3.critic_optimizer.step()
    td3.updates += 1
    if td3.updates % td3._policy_delay:
        return
    td3.critic.requires_grad_(False)
    q_new = td3.critic(torch.cat([obs, policy.actor.deterministic_action(obs)], dim=-1)).reshape(td3.n_critics, -1)
    td3.critic.requires_grad_(True)
    td3.actor_optimizer.zero_grad()
    compute_td3_actor_loss(q_new[0]).backward()
    td3.actor_optimizer.step()
    polyak_update(list(td3.critic.parameters()), list(td3.critic_target.parameters()), cfg.tau)
    polyak_update(list(policy.actor.parameters()), list(td3.actor_target.parameters()), cfg.tau)


@pytest.mark.parametrize("algorithm", [TD3, DDPG])
def test_td3_and_ddpg_updates_match_autograd(algorithm: type[TD3]) -> None:
    config = (TD3Config if algorithm is TD3 else DDPGConfig)(hidden_sizes=[32, 32], batch_size=64)
    torch.manual_seed(0)
    manual = algorithm(OFF_POLICY_OBS, OFF_POLICY_ACT, config)
    reference = copy.deepcopy(manual)
    for update, batch in enumerate(_replay_batches(8)):
        torch.manual_seed(100 + update)  # the same smoothing noise for both
        _autograd_td3_update(reference, batch)
        torch.manual_seed(100 + update)
        manual.update(batch)
    assert manual.updates == 8 and manual.actor_updates == 8 // manual._policy_delay
    _assert_same_parameters(manual, reference)
