"""Advantage Actor-Critic, the synchronous form of A3C (Mnih et al. 2016, "Asynchronous Methods for
Deep Reinforcement Learning").

Several env copies step together for a few steps; one gradient step on the whole short rollout
follows, with the policy gradient weighted by n-step (or GAE) advantages from a learned critic,
a value regression and an entropy bonus. Defaults follow Stable-Baselines3 (RMSprop, 5 steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from drl_ros.core.actors import CategoricalActor, GaussianActor
from drl_ros.core.algorithms.base import (
    ActorCriticNetworksConfig,
    OnPolicyAlgorithm,
    all_finite,
    fused_adam,
    grads_finite,
    make_policy_and_value,
)
from drl_ros.core.buffers import RolloutBatch
from drl_ros.core.spaces import BoxSpec, SpaceSpec


@dataclass
class A2CConfig(ActorCriticNetworksConfig):
    """Hyperparameters of A2C. Defaults follow Stable-Baselines3."""

    learning_rate: float = 7e-4
    """Optimizer step size."""
    n_steps: int = 5
    """Steps per env in each rollout; one gradient step per rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE λ; 1 gives the paper's n-step returns bootstrapped at the end of the rollout."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    normalize_advantage: bool = False
    """Standardize advantages over the rollout."""
    optimizer: str = "rmsprop"
    """``rmsprop`` (the paper's, with α = 0.99, ε = 1e-5) or ``adam``."""

    def __post_init__(self) -> None:
        if self.n_steps < 1:
            raise ValueError("n_steps must be positive")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}")


def compute_a2c_policy_loss(log_prob: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Policy-gradient loss ``−E[log π(a|s) · A(s, a)]``; inputs ``(N,)``, the advantage held constant."""
    return -(log_prob * advantage.detach()).mean()


def compute_a2c_value_loss(value: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """MSE of ``V(s)`` to the n-step / λ-returns; inputs ``(N,)``."""
    return (returns - value).pow(2).mean()


class A2C(OnPolicyAlgorithm):
    """A2C for Box (Gaussian) and Discrete (categorical) action spaces."""

    name: ClassVar[str] = "a2c"

    def __init__(self, observation_spec: BoxSpec, action_spec: SpaceSpec, config: A2CConfig) -> None:
        super().__init__()
        self.config = config
        self.policy, self.critic = make_policy_and_value(observation_spec, action_spec, config)
        self._params = list(self.policy.actor.parameters()) + list(self.critic.parameters())
        if config.optimizer == "rmsprop":
            self.optimizer: torch.optim.Optimizer = torch.optim.RMSprop(self._params, lr=config.learning_rate,
                                                                        alpha=0.99, eps=1e-5)
        else:
            self.optimizer = fused_adam(self._params, config.learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    @torch.no_grad()
    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, self.policy.observation_spec.dim)
        return self.critic(self.policy.normalize(obs_t)).squeeze(-1).numpy()

    def update(self, rollout: RolloutBatch, rng: np.random.Generator | None = None) -> dict[str, float]:
        """One gradient step on the whole rollout."""
        cfg = self.config
        actor = self.policy.actor
        assert isinstance(actor, (CategoricalActor, GaussianActor))
        obs = self.policy.normalize(rollout.obs)
        log_prob, entropy = actor.log_prob_entropy(obs, rollout.action)
        advantage = rollout.advantage
        if cfg.normalize_advantage and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        policy_loss = compute_a2c_policy_loss(log_prob, advantage)
        value_loss = compute_a2c_value_loss(self.critic(obs).squeeze(-1), rollout.returns)
        entropy_mean = entropy.mean()
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy_mean
        if not all_finite(loss):
            self.skipped_updates += 1
            return {"skipped": 1.0}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not grads_finite(self._params):
            self.skipped_updates += 1
            return {"skipped": 1.0}
        nn.utils.clip_grad_norm_(self._params, cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy_mean.item()}
