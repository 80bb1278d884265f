"""REINFORCE with a learned state-value baseline (Williams 1992; Sutton & Barto 2018, section 13.4).

The policy gradient ``E[∇ log π(a_t|s_t) (G_t − b(s_t))]`` with ``G_t`` the discounted
reward-to-go and ``b`` a value network fitted to the same returns. Monte Carlo returns need whole
episodes; rollouts here are fixed-length slices of the env streams, so an episode cut by the end
of a rollout (or truncated by a time limit) is completed with the baseline's estimate of the rest,
``γ^k V(s_{t+k})``. Everything inside an episode stays a true Monte Carlo sum (GAE with λ = 1).
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
class ReinforceConfig(ActorCriticNetworksConfig):
    """Hyperparameters of REINFORCE with a baseline."""

    learning_rate: float = 1e-3
    """Adam step size of the policy."""
    baseline_learning_rate: float = 1e-3
    """Adam step size of the value baseline."""
    n_steps: int = 512
    """Steps per env in each rollout; one policy-gradient step per rollout."""
    gamma: float = 0.99
    """Discount factor of the returns."""
    baseline: bool = True
    """Subtract a learned state value from the returns (variance reduction); False is plain REINFORCE."""
    baseline_epochs: int = 5
    """Gradient steps of the baseline on each rollout (full batch), after the policy step."""
    normalize_advantage: bool = True
    """Standardize ``G − b`` over the rollout."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float | None = None
    """Global gradient-norm clip of the policy step; None does not clip."""

    gae_lambda: ClassVar[float] = 1.0
    """Monte Carlo returns: the rollout loop's GAE with λ = 1 is the reward-to-go minus the baseline."""

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.baseline_epochs < 0:
            raise ValueError("n_steps must be positive and baseline_epochs non-negative")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")


def compute_reinforce_returns(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                              bootstrap_values: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted reward-to-go ``G_t = r_t + γ G_{t+1}`` over a ``(T, E)`` rollout.

    The sum restarts at every episode end. Where an episode was truncated, or where the rollout
    ends inside an episode, the rest of the return is the estimate ``bootstrap_values[t]``
    (``V`` of the true next state; 0 when there is no baseline); a terminated episode has none.
    """
    returns = np.zeros(rewards.shape, dtype=np.float64)
    following = np.zeros(rewards.shape[1:], dtype=np.float64)  # G_{t+1} of the same episode
    for t in reversed(range(rewards.shape[0])):
        episode_ends = terminated[t] | truncated[t]
        last_row = t == rewards.shape[0] - 1
        tail = np.where(episode_ends | last_row, bootstrap_values[t], following)
        tail = np.where(terminated[t], 0.0, tail)
        returns[t] = rewards[t] + gamma * tail
        following = returns[t]
    return returns.astype(np.float32)


def compute_reinforce_loss(log_prob: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Score-function loss ``−E[log π(a|s) · (G − b(s))]``; inputs ``(N,)``, the advantage held constant."""
    return -(log_prob * advantage.detach()).mean()


def compute_baseline_loss(value: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the baseline ``b(s)`` to the returns; inputs ``(N,)``."""
    return (returns - value).pow(2).mean()


class Reinforce(OnPolicyAlgorithm):
    """REINFORCE for Box (Gaussian) and Discrete (categorical) action spaces."""

    name: ClassVar[str] = "reinforce"

    def __init__(self, observation_spec: BoxSpec, action_spec: SpaceSpec, config: ReinforceConfig) -> None:
        super().__init__()
        self.config = config
        self.policy, self.baseline = make_policy_and_value(observation_spec, action_spec, config)
        self._actor_params = list(self.policy.actor.parameters())
        self.optimizer = fused_adam(self._actor_params, config.learning_rate)
        self.baseline_optimizer = fused_adam(self.baseline.parameters(), config.baseline_learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "baseline": self.baseline}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer, "baseline": self.baseline_optimizer}

    @torch.no_grad()
    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Baseline ``b(s)`` ``(B,)`` of raw observations ``(B, obs_dim)``; zeros without a baseline, so
        returns are then pure Monte Carlo sums."""
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, self.policy.observation_spec.dim)
        if not self.config.baseline:
            return np.zeros(obs_t.shape[0], dtype=np.float32)
        return self.baseline(self.policy.normalize(obs_t)).squeeze(-1).numpy()

    def update(self, rollout: RolloutBatch, rng: np.random.Generator | None = None) -> dict[str, float]:
        """One policy-gradient step on the whole rollout, then ``baseline_epochs`` baseline steps."""
        cfg = self.config
        actor = self.policy.actor
        assert isinstance(actor, (CategoricalActor, GaussianActor))
        obs = self.policy.normalize(rollout.obs)
        # The advantage G − b(s) uses the baseline as it was when the rollout was collected.
        advantage = rollout.advantage
        if cfg.normalize_advantage and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        log_prob, entropy = actor.log_prob_entropy(obs, rollout.action)
        policy_loss = compute_reinforce_loss(log_prob, advantage)
        loss = policy_loss - cfg.ent_coef * entropy.mean()
        metrics: dict[str, float] = {}
        if all_finite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grads_finite(self._actor_params):
                if cfg.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self._actor_params, cfg.max_grad_norm)
                self.optimizer.step()
                self.updates += 1
            else:
                self.skipped_updates += 1
        else:
            self.skipped_updates += 1
        metrics.update(policy_loss=policy_loss.item(), entropy=entropy.mean().item())
        if cfg.baseline:
            for _ in range(cfg.baseline_epochs):
                baseline_loss = compute_baseline_loss(self.baseline(obs).squeeze(-1), rollout.returns)
                if not all_finite(baseline_loss):
                    self.skipped_updates += 1
                    break
                self.baseline_optimizer.zero_grad(set_to_none=True)
                baseline_loss.backward()
                self.baseline_optimizer.step()
                metrics["baseline_loss"] = baseline_loss.item()
        return metrics
