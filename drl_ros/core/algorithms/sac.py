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

from drl_ros.core.algorithms.base import (
    ContinuousOffPolicyConfig,
    OffPolicyAlgorithm,
    all_finite,
    fused_adam,
    grads_finite,
    polyak_update,
)
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
        self._actor_params = list(self.policy.actor.parameters())

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

    def update(self, batch: ReplayBatch) -> dict[str, float]:
        """One gradient step on critics, actor and temperature. Returns scalar metrics."""
        policy = self.policy
        obs = policy.normalize(batch.obs)
        next_obs = policy.normalize(batch.next_obs)
        alpha = self.alpha

        with torch.no_grad():
            next_action, next_log_prob = policy.actor.sample(next_obs)
            next_q = self.critic_target(torch.cat([next_obs, next_action], dim=-1))
            target = compute_sac_target(batch.reward, batch.discount, next_q, next_log_prob, alpha)
        q = self.critic(torch.cat([obs, batch.action], dim=-1))
        critic_loss = compute_sac_critic_loss(q, target)

        # The actor's loss differentiates through the critic, but only the actor may move.
        self.critic.requires_grad_(False)
        action, log_prob = policy.actor.sample(obs)
        q_new = self.critic(torch.cat([obs, action], dim=-1))
        actor_loss = compute_sac_actor_loss(q_new, log_prob, alpha)
        self.critic.requires_grad_(True)
        alpha_loss = compute_sac_alpha_loss(self.log_alpha, log_prob, self.target_entropy)

        if not all_finite(critic_loss, actor_loss, alpha_loss):
            self.skipped_updates += 1
            return {"skipped": 1.0}
        self.critic_optimizer.zero_grad(set_to_none=True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        actor_loss.backward()
        if self.config.learn_alpha:
            alpha_loss.backward()
        if not grads_finite(self._critic_params + self._actor_params + [self.log_alpha]):
            self.skipped_updates += 1
            return {"skipped": 1.0}
        self.critic_optimizer.step()
        self.actor_optimizer.step()
        if self.config.learn_alpha:
            self.alpha_optimizer.step()
        polyak_update(self._critic_params, self._target_params, self.config.tau)
        self.updates += 1
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(),
                "alpha": float(alpha), "entropy": -log_prob.mean().item(), "q": q.mean().item()}
