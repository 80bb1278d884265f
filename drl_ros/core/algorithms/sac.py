"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

Twin Q networks with target copies, a tanh-squashed Gaussian actor and automatic tuning of the
entropy temperature α towards a target entropy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from drl_ros.core.actors import LOG_STD_MAX, LOG_STD_MIN, squashed_gaussian_log_prob
from drl_ros.core.algorithms.base import (
    ContinuousOffPolicyConfig,
    OffPolicyAlgorithm,
    fused_adam,
    polyak_update,
)
from drl_ros.core.backprop import MLPBackprop, Tape, adam_step, all_finite_no_grad
from drl_ros.core.buffers import ReplayBatch
from drl_ros.core.networks import EnsembleMLP
from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec


@dataclass
class SACConfig(ContinuousOffPolicyConfig):
    """Hyperparameters of SAC. Defaults follow Stable-Baselines3 unless a comment says otherwise."""

    learning_rate: float = 3e-4
    """Adam step size for actor, critics and temperature."""
    initial_alpha: float = 1.0
    """Initial entropy temperature α."""
    learn_alpha: bool = True
    """Tune α automatically towards ``target_entropy``; False keeps ``initial_alpha`` fixed."""
    target_entropy: float | None = None
    """Entropy target; None means ``-action_dim`` (the paper's heuristic)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.initial_alpha <= 0.0:
            raise ValueError(f"initial_alpha must be positive, got {self.initial_alpha}")


def compute_sac_target(reward: torch.Tensor, discount: torch.Tensor, next_q: torch.Tensor,
                       next_log_prob: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """Soft TD target ``r + discount · (min_i Q'_i(s', a') − α log π(a'|s'))``.

    ``next_q`` is ``(n_critics, B)``; ``discount`` already holds ``γ^n`` and 0 on termination.
    """
    soft_value = next_q.min(dim=0).values - alpha * next_log_prob
    return reward + discount * soft_value


def compute_sac_critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over critics of ½·MSE to the shared target; ``q`` is ``(n_critics, B)``."""
    return 0.5 * (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()


def compute_sac_actor_loss(q_new: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """``E[α log π(a|s) − min_i Q_i(s, a)]`` with ``a ~ π`` reparameterized; ``q_new`` is ``(n_critics, B)``."""
    return (alpha * log_prob - q_new.min(dim=0).values).mean()


def compute_sac_alpha_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """Temperature loss ``−log α · (log π + H_target)``: α grows while entropy is below the target."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


class SAC(OffPolicyAlgorithm):
    """SAC on a Box action space."""

    name: ClassVar[str] = "sac"

    def __init__(self, observation_spec: BoxSpec, action_spec: BoxSpec, config: SACConfig) -> None:
        super().__init__()
        if not isinstance(action_spec, BoxSpec) or not action_spec.bounded:
            raise ValueError("SAC needs a bounded Box action space")
        self.config = config
        act_dim = action_spec.dim
        self.policy = Policy.create(observation_spec, action_spec, "squashed_gaussian", config.hidden_sizes,
                                    config.activation, config.normalize_observations)
        self.critic = EnsembleMLP(2, observation_spec.dim + act_dim, config.hidden_sizes, config.activation)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(float(config.initial_alpha)).log())
        self.target_entropy = float(-act_dim if config.target_entropy is None else config.target_entropy)
        self.actor_optimizer = fused_adam(self.policy.actor.parameters(), config.learning_rate)
        self.critic_optimizer = fused_adam(self.critic.parameters(), config.learning_rate)
        self.alpha_optimizer = fused_adam([self.log_alpha], config.learning_rate)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self._trunk = MLPBackprop(self.policy.actor.trunk)
        self._critic_net = MLPBackprop(self.critic.net)
        self._critic_target_net = MLPBackprop(self.critic_target.net)

    def modules(self) -> dict[str, nn.Module]:
        alpha_holder = nn.Module()
        alpha_holder.log_alpha = self.log_alpha
        return {"policy": self.policy, "critic": self.critic, "critic_target": self.critic_target,
                "alpha": alpha_holder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer, "alpha": self.alpha_optimizer}

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def update(self, batch: ReplayBatch) -> dict[str, float]:
        """One gradient step on critics, actor and temperature. Returns scalar metrics.

        Gradients are written out by hand (:mod:`drl_ros.core.backprop`): the same arithmetic
        as autograd on :func:`compute_sac_critic_loss`, :func:`compute_sac_actor_loss` and
        :func:`compute_sac_alpha_loss`, in about a fifth of the operators.
        """
        policy = self.policy
        obs = policy.normalize(batch.obs)
        next_obs = policy.normalize(batch.next_obs)
        alpha = self.alpha
        batch_size, obs_dim = obs.shape

        next_action, next_log_prob, _ = self._actor_forward(next_obs, record=False)
        next_q = self._critic_target_net.predict(torch.cat([next_obs, next_action], dim=-1))
        target = compute_sac_target(batch.reward, batch.discount, next_q.squeeze(-1), next_log_prob, alpha)

        q, critic_tape = self._critic_net.forward(torch.cat([obs, batch.action], dim=-1))
        q = q.squeeze(-1)
        critic_loss = compute_sac_critic_loss(q, target)
        critic_grads, _ = self._critic_net.backward(critic_tape, ((q - target) / batch_size).unsqueeze(-1))

        action, log_prob, actor_tape = self._actor_forward(obs, record=True)
        q_new, q_new_tape = self._critic_net.forward(torch.cat([obs, action], dim=-1))
        q_new = q_new.squeeze(-1)
        actor_loss = compute_sac_actor_loss(q_new, log_prob, alpha)
        # The actor's loss reaches the critics only through the action (they do not move): the
        # input gradient of the critic that gives the minimum, for −mean(min Q).
        grad_q_new = torch.zeros_like(q_new).scatter_(0, q_new.argmin(0, keepdim=True), -1.0 / batch_size)
        _, grad_input = self._critic_net.backward(q_new_tape, grad_q_new.unsqueeze(-1), param_grads=False,
                                                  input_grad=True)
        assert grad_input is not None and actor_tape is not None  # asked for input_grad; recorded
        actor_grads = self._actor_backward(actor_tape, grad_input[:, obs_dim:], alpha / batch_size)
        alpha_loss = compute_sac_alpha_loss(self.log_alpha, log_prob, self.target_entropy)
        alpha_grads = [-(log_prob + self.target_entropy).mean()]

        if not all_finite_no_grad([critic_loss, actor_loss, alpha_loss, *critic_grads, *actor_grads, *alpha_grads]):
            self.skipped_updates += 1
            return {"skipped": 1.0}
        adam_step([(self.critic_optimizer, critic_grads), (self.actor_optimizer, actor_grads),
                   *([(self.alpha_optimizer, alpha_grads)] if self.config.learn_alpha else [])])
        polyak_update(self._critic_params, self._target_params, self.config.tau)
        self.updates += 1
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(),
                "alpha": float(alpha), "entropy": -log_prob.mean().item(), "q": q.mean().item()}

    def _actor_forward(self, obs: torch.Tensor, record: bool) -> tuple[torch.Tensor, torch.Tensor, ActorTape | None]:
        """``SquashedGaussianActor.sample`` by hand: ``(action, log_prob, tape)``; it draws the
        same noise from the same generator."""
        actor = self.policy.actor
        trunk_tape: Tape | None = None
        if record:
            features, trunk_tape = self._trunk.forward(obs)
        else:
            features = self._trunk.predict(obs)
        mean = torch.addmm(actor.mean_head.bias, features, actor.mean_head.weight.t())
        raw_log_std = torch.addmm(actor.log_std_head.bias, features, actor.log_std_head.weight.t())
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        noise = torch.randn_like(mean)
        pre_tanh = torch.addcmul(mean, std, noise)
        action = torch.tanh(pre_tanh)
        log_prob = squashed_gaussian_log_prob(noise, log_std, pre_tanh)
        if trunk_tape is None:
            return action, log_prob, None
        # clamp passes the gradient exactly where it left the value unchanged.
        tape = ActorTape(trunk_tape, features, log_std == raw_log_std, std * noise, action)
        return action, log_prob, tape

    def _actor_backward(self, tape: ActorTape, grad_action: torch.Tensor, log_prob_weight: torch.Tensor) -> list[torch.Tensor]:
        """Actor gradients for ``grad_action`` (the loss's gradient w.r.t. the squashed action)
        plus ``log_prob_weight`` per unit of ``log_prob`` (α / B for the mean over the batch)."""
        actor = self.policy.actor
        # d log_prob / d pre_tanh = 2 tanh(u) (the squashing correction); d action / d pre_tanh = 1 − tanh².
        grad_pre_tanh = grad_action * (1.0 - tape.action.pow(2)) + 2.0 * log_prob_weight * tape.action
        # pre_tanh moves with log_std by std · noise; the Gaussian term adds −1 per log_std.
        grad_log_std = (grad_pre_tanh * tape.std_noise - log_prob_weight) * tape.log_std_free
        grad_features = torch.addmm(torch.mm(grad_pre_tanh, actor.mean_head.weight), grad_log_std,
                                    actor.log_std_head.weight)
        trunk_grads, _ = self._trunk.backward(tape.trunk, grad_features)
        return [*trunk_grads, torch.mm(grad_pre_tanh.t(), tape.features), grad_pre_tanh.sum(0),
                torch.mm(grad_log_std.t(), tape.features), grad_log_std.sum(0)]


@dataclass
class ActorTape:
    """What the actor's backward pass keeps from its forward pass."""

    trunk: Tape
    features: torch.Tensor
    log_std_free: torch.Tensor
    """Where ``log_std`` was not clamped (bool): only there does its gradient pass."""
    std_noise: torch.Tensor
    action: torch.Tensor
