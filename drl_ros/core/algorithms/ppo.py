"""Proximal Policy Optimization (Schulman et al. 2017) with the clipped surrogate objective.

GAE(λ) advantages with bootstrapping on truncation, per-minibatch advantage normalization, an
optionally clipped value loss, an entropy bonus, several minibatch epochs per rollout, global
gradient-norm clipping and early stopping on approximate KL (the details catalogued by Huang et
al., "The 37 Implementation Details of PPO").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from drl_ros.core.actors import CategoricalActor, GaussianActor
from drl_ros.core.algorithms.base import (
    ActorCriticNetworksConfig,
    OnPolicyAlgorithm,
    fused_adam,
    make_policy_and_value,
)
from drl_ros.core.backprop import MLPBackprop, adam_step, all_finite_no_grad
from drl_ros.core.buffers import RolloutBatch
from drl_ros.core.spaces import BoxSpec, SpaceSpec


@dataclass
class PPOConfig(ActorCriticNetworksConfig):
    """Hyperparameters of PPO. Defaults follow Stable-Baselines3."""

    learning_rate: float = 3e-4
    """Adam step size (the initial one when ``lr_schedule`` is linear)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """``linear`` anneals the step size and the clip range to 0 over the run."""
    n_steps: int = 2048
    """Steps per env in each rollout."""
    batch_size: int = 64
    """Minibatch size of the update epochs."""
    n_epochs: int = 10
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE λ: 0 is one-step TD, 1 is Monte Carlo."""
    clip_range: float = 0.2
    """Clip ε of the surrogate ratio."""
    clip_range_vf: float | None = None
    """Clip of the value update around the collection-time values; None disables it."""
    normalize_advantage: bool = True
    """Standardize advantages within each minibatch."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs of a rollout once approximate KL exceeds 1.5 × this; None never stops."""

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.batch_size < 1 or self.n_epochs < 1:
            raise ValueError("n_steps, batch_size and n_epochs must be positive")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.clip_range <= 0.0:
            raise ValueError(f"clip_range must be positive, got {self.clip_range}")


def compute_ppo_policy_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor,
                            clip_range: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate ``−E[min(ρA, clip(ρ, 1−ε, 1+ε)A)]`` with ``ρ = π/π_old``; all inputs ``(B,)``.

    Returns ``(loss, clip_fraction, approx_kl)``; approx KL is the low-variance estimator
    ``E[(ρ − 1) − log ρ]``.
    """
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    surrogate = ratio * advantage
    clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantage
    loss = -torch.min(surrogate, clipped).mean()
    with torch.no_grad():
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return loss, clip_fraction, approx_kl


def compute_ppo_value_loss(value: torch.Tensor, returns: torch.Tensor, old_value: torch.Tensor,
                           clip_range_vf: float | None) -> torch.Tensor:
    """MSE to the λ-returns; with ``clip_range_vf`` the prediction may move at most that far from
    the collection-time value (SB3's form: the clipped prediction's error alone)."""
    if clip_range_vf is not None:
        value = old_value + (value - old_value).clamp(-clip_range_vf, clip_range_vf)
    return (returns - value).pow(2).mean()


def normalize_advantages(advantage: torch.Tensor) -> torch.Tensor:
    if advantage.numel() < 2:
        return advantage
    return (advantage - advantage.mean()) / (advantage.std() + 1e-8)


class PPO(OnPolicyAlgorithm):
    """PPO for Box (Gaussian) and Discrete (categorical) action spaces."""

    name: ClassVar[str] = "ppo"

    def __init__(self, observation_spec: BoxSpec, action_spec: SpaceSpec, config: PPOConfig,
                 total_updates_hint: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.policy, self.critic = make_policy_and_value(observation_spec, action_spec, config)
        self._params = list(self.policy.actor.parameters()) + list(self.critic.parameters())
        # eps=1e-5 as in the reference PPO implementations (not Adam's 1e-8 default).
        self.optimizer = fused_adam(self._params, config.learning_rate, eps=1e-5)
        self._critic_net = MLPBackprop(self.critic)
        self._param_sizes = [p.numel() for p in self._params]
        self.progress_remaining = 1.0
        """1 at the start of training, 0 at the end; drives the linear schedule."""

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "progress_remaining": self.progress_remaining}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.progress_remaining = float(state["progress_remaining"])

    @torch.no_grad()
    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """State values ``(B,)`` for raw observations ``(B, obs_dim)``."""
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, self.policy.observation_spec.dim)
        return self.critic(self.policy.normalize(obs_t)).squeeze(-1).numpy()

    def _schedule(self) -> float:
        return self.progress_remaining if self.config.lr_schedule == "linear" else 1.0

    def update(self, rollout: RolloutBatch, rng: np.random.Generator | None = None) -> dict[str, float]:
        """Minibatch epochs of the clipped objective over one rollout."""
        cfg = self.config
        rng = rng if rng is not None else np.random.default_rng()
        scale = self._schedule()
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.learning_rate * scale
        clip_range = cfg.clip_range * scale if cfg.lr_schedule == "linear" else cfg.clip_range
        clip_range = max(clip_range, 1e-8)
        obs_all = self.policy.normalize(rollout.obs)
        total = rollout.obs.shape[0]
        stats: dict[str, list[torch.Tensor]] = {"policy_loss": [], "value_loss": [], "entropy": [], "clip_fraction": [],
                                                "approx_kl": []}
        stopped_early = False
        epochs_done = 0
        # A minibatch that holds the whole rollout: its order cannot change its gradient, so it is
        # neither shuffled nor gathered again every epoch.
        whole = (obs_all, rollout.action, rollout.log_prob, self._advantage(rollout.advantage), rollout.returns,
                 rollout.value) if cfg.batch_size >= total else None
        for _ in range(cfg.n_epochs):
            for minibatch in [whole] if whole is not None else self._minibatches(rollout, obs_all, rng):
                step = self._minibatch_step(*minibatch, clip_range)
                if step is None:
                    self.skipped_updates += 1
                    continue
                if cfg.target_kl is not None and step["approx_kl"].item() > 1.5 * cfg.target_kl:
                    stopped_early = True
                    break
                adam_step([(self.optimizer, step.pop("grads"))])
                self.updates += 1
                for name, value in step.items():
                    stats[name].append(value)
            epochs_done += 1
            if stopped_early:
                break
        actor = self.policy.actor
        metrics = {name: torch.stack(values).mean().item() if values else float("nan") for name, values in stats.items()}
        metrics.update(epochs=float(epochs_done), learning_rate=cfg.learning_rate * scale,
                       stopped_early=float(stopped_early))
        if isinstance(actor, GaussianActor):
            metrics["std"] = float(actor.log_std.detach().exp().mean())
        return metrics

    def _minibatches(self, rollout: RolloutBatch, obs_all: torch.Tensor, rng: np.random.Generator
                     ) -> Iterator[tuple[torch.Tensor, ...]]:
        """One epoch's shuffled minibatches: (obs, action, log_prob, advantage, returns, value)."""
        total = obs_all.shape[0]
        order = torch.from_numpy(rng.permutation(total))
        for start in range(0, total, self.config.batch_size):
            idx = order[start:start + self.config.batch_size]
            yield (obs_all[idx], rollout.action[idx], rollout.log_prob[idx], self._advantage(rollout.advantage[idx]),
                   rollout.returns[idx], rollout.value[idx])

    def _advantage(self, advantage: torch.Tensor) -> torch.Tensor:
        return normalize_advantages(advantage) if self.config.normalize_advantage else advantage

    @torch.no_grad()
    def _minibatch_step(self, obs: torch.Tensor, action: torch.Tensor, old_log_prob: torch.Tensor,
                        advantage: torch.Tensor, returns: torch.Tensor, old_value: torch.Tensor,
                        clip_range: float) -> dict[str, Any] | None:
        """Gradients of ``policy_loss + vf_coef · value_loss − ent_coef · entropy`` on one minibatch
        (its advantages already normalized when the config asks), clipped to ``max_grad_norm``, with the scalar metrics as tensors; None when the loss or the
        gradient is not finite.

        The losses are :func:`compute_ppo_policy_loss` and :func:`compute_ppo_value_loss`; their
        gradients are written out by hand (:mod:`drl_ros.core.backprop`), which is what makes an
        update of a small network several times cheaper than autograd on a CPU.
        """
        cfg = self.config
        batch_size = obs.shape[0]
        actor = self.policy.actor
        assert isinstance(actor, (CategoricalActor, GaussianActor))
        actor_out, actor_tape = actor.backprop.forward(obs)
        log_prob, entropy, saved = actor.log_prob_entropy_of(actor_out, action)
        policy_loss, clip_fraction, approx_kl = compute_ppo_policy_loss(log_prob, old_log_prob, advantage, clip_range)
        value_out, value_tape = self._critic_net.forward(obs)
        value = value_out.squeeze(-1)
        value_loss = compute_ppo_value_loss(value, returns, old_value, cfg.clip_range_vf)
        entropy_mean = entropy.mean()
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy_mean

        # −mean(min(ρA, clip(ρ)A)): the gradient flows through ρ wherever the unclipped term is
        # the smaller one (where they tie, ρ lies inside the clip range and both terms agree).
        ratio = (log_prob - old_log_prob).exp()
        grad_log_prob = -(advantage * ratio * (ratio * advantage <= ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
                                               * advantage)) / batch_size
        grad_actor_out, own_grads = actor.log_prob_entropy_backward(saved, grad_log_prob, -cfg.ent_coef / batch_size)
        network_grads, _ = actor.backprop.backward(actor_tape, grad_actor_out)
        actor_grads = own_grads + network_grads  # in parameters() order
        if cfg.clip_range_vf is None:
            grad_value = -2.0 * cfg.vf_coef / batch_size * (returns - value)
        else:
            delta = value - old_value
            clipped = old_value + delta.clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
            grad_value = -2.0 * cfg.vf_coef / batch_size * (returns - clipped) * (delta.abs() <= cfg.clip_range_vf)
        critic_grads, _ = self._critic_net.backward(value_tape, grad_value.unsqueeze(-1))
        # clip_grad_norm_'s arithmetic on one flat vector of every gradient: one global norm, all
        # scaled by min(1, max / norm); per-tensor foreach calls cost more than the arithmetic here.
        flat = torch.cat([grad.reshape(-1) for grad in actor_grads + critic_grads])
        grad_norm = torch.linalg.vector_norm(flat)
        if not all_finite_no_grad([loss, grad_norm]):
            return None
        flat.mul_((cfg.max_grad_norm / (grad_norm + 1e-6)).clamp(max=1.0))
        grads = [chunk.view_as(param) for chunk, param in zip(flat.split(self._param_sizes), self._params)]
        return {"grads": grads, "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy_mean,
                "clip_fraction": clip_fraction, "approx_kl": approx_kl}
