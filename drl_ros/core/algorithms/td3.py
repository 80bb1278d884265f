"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic
Methods").

DDPG's deterministic actor-critic with the paper's three fixes against Q overestimation: clipped
double-Q learning (the target takes the smaller of two target critics), delayed policy updates
(the actor and the target networks move once every ``policy_delay`` critic steps) and target
policy smoothing (clipped Gaussian noise on the target action). Exploration adds Gaussian noise
to the actor's action while collecting. :class:`TD3` is also the engine of DDPG
(:mod:`drl_ros.core.algorithms.ddpg`): one critic, no delay, no smoothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from drl_ros.core.actors import DeterministicActor
from drl_ros.core.algorithms.base import (
    ContinuousOffPolicyConfig,
    OffPolicyAlgorithm,
    fused_adam,
    polyak_update,
)
from drl_ros.core.backprop import MLPBackprop, adam_step, all_finite_no_grad
from drl_ros.core.buffers import ReplayBatch
from drl_ros.core.networks import EnsembleMLP
from drl_ros.core.policy import Policy, PolicyStep
from drl_ros.core.spaces import BoxSpec


@dataclass
class TD3Config(ContinuousOffPolicyConfig):
    """Hyperparameters of TD3. Defaults follow Stable-Baselines3 unless a comment says otherwise."""

    action_noise: float = 0.1
    """Standard deviation of the Gaussian exploration noise, in normalized action units ([-1, 1])."""
    policy_delay: int = 2
    """Critic steps per actor (and target) update."""
    target_policy_noise: float = 0.2
    """Standard deviation of the smoothing noise on target actions (normalized units)."""
    target_noise_clip: float = 0.5
    """The smoothing noise is clipped to ``±target_noise_clip``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.policy_delay < 1:
            raise ValueError("policy_delay must be positive")
        if self.action_noise < 0.0 or self.target_policy_noise < 0.0 or self.target_noise_clip < 0.0:
            raise ValueError("noise scales must be non-negative")


def compute_td3_target_action(next_action: torch.Tensor, noise: torch.Tensor, noise_clip: float) -> torch.Tensor:
    """Target policy smoothing: ``clip(μ'(s') + clip(ε, −c, c), −1, 1)`` with ``ε ~ N(0, σ²)`` given as
    ``noise``; all ``(B, act_dim)`` in normalized action units."""
    return (next_action + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def compute_td3_target(reward: torch.Tensor, discount: torch.Tensor, next_q: torch.Tensor) -> torch.Tensor:
    """Clipped double-Q target ``r + discount · min_i Q'_i(s', ã)``; ``next_q`` is ``(n_critics, B)``,
    ``discount`` ``(B,)`` holds ``γ^n`` and 0 on termination."""
    return reward + discount * next_q.min(dim=0).values


def compute_td3_critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over critics of the MSE to the shared target; ``q`` is ``(n_critics, B)``."""
    return (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()


def compute_td3_actor_loss(q1: torch.Tensor) -> torch.Tensor:
    """Deterministic policy gradient loss ``−E[Q_1(s, μ(s))]``; ``q1`` is ``(B,)``."""
    return -q1.mean()


class TD3(OffPolicyAlgorithm):
    """TD3 on a bounded Box action space; with ``n_critics=1``, ``policy_delay=1`` and no smoothing it
    is DDPG."""

    name: ClassVar[str] = "td3"
    n_critics: ClassVar[int] = 2
    smoothing: ClassVar[bool] = True

    def __init__(self, observation_spec: BoxSpec, action_spec: BoxSpec, config: TD3Config) -> None:
        super().__init__()
        if not isinstance(action_spec, BoxSpec) or not action_spec.bounded:
            raise ValueError(f"{type(self).__name__} needs a bounded Box action space")
        self.config = config
        act_dim = action_spec.dim
        self.policy = Policy.create(observation_spec, action_spec, DeterministicActor.kind, config.hidden_sizes,
                                    config.activation, config.normalize_observations)
        self.actor_target = copy.deepcopy(self.policy.actor).requires_grad_(False)
        self.critic = EnsembleMLP(self.n_critics, observation_spec.dim + act_dim, config.hidden_sizes,
                                  config.activation)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = fused_adam(self.policy.actor.parameters(), config.learning_rate)
        self.critic_optimizer = fused_adam(self.critic.parameters(), config.learning_rate)
        self._actor_params: list[torch.Tensor] = list(self.policy.actor.parameters())
        self._actor_target_params: list[torch.Tensor] = list(self.actor_target.parameters())
        self._critic_params: list[torch.Tensor] = list(self.critic.parameters())
        self._critic_target_params: list[torch.Tensor] = list(self.critic_target.parameters())
        self._policy_delay = getattr(config, "policy_delay", 1)
        self._actor_net = MLPBackprop(self.policy.actor.net)
        self._actor_target_net = MLPBackprop(self.actor_target.net)
        self._critic_net = MLPBackprop(self.critic.net)
        self._critic_target_net = MLPBackprop(self.critic_target.net)
        self.actor_updates = 0
        """Actor steps so far (``updates`` counts critic steps; the actor moves on every
        ``policy_delay``-th)."""

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "actor_target": self.actor_target, "critic": self.critic,
                "critic_target": self.critic_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def extra_state(self) -> dict[str, object]:
        return {**super().extra_state(), "actor_updates": self.actor_updates}

    def load_extra_state(self, state: dict[str, object]) -> None:
        super().load_extra_state(state)
        self.actor_updates = int(state["actor_updates"])  # type: ignore[call-overload]

    @torch.no_grad()
    def collect_action(self, obs: np.ndarray, steps: int) -> PolicyStep:
        """``μ(s) + N(0, σ²)`` clipped to ``[-1, 1]``. Noise from torch's generator, which checkpoints
        save, so a resumed run explores as the straight one would."""
        policy = self.policy
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, policy.observation_spec.dim)
        action = policy.actor.deterministic_action(policy.normalize(obs_t))
        if self.config.action_noise > 0.0:
            action = (action + self.config.action_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        action_np = action.numpy()
        return PolicyStep(policy.scale_action(action_np), action_np, np.zeros(action_np.shape[0], dtype=np.float32))

    def _target(self, batch: ReplayBatch, next_obs: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        next_action = torch.tanh(self._actor_target_net.predict(next_obs))
        if self.smoothing:
            noise = cfg.target_policy_noise * torch.randn_like(next_action)
            next_action = compute_td3_target_action(next_action, noise, cfg.target_noise_clip)
        next_q = self._critic_target_net.predict(torch.cat([next_obs, next_action], dim=-1)).reshape(self.n_critics, -1)
        return compute_td3_target(batch.reward, batch.discount, next_q)

    @torch.no_grad()
    def update(self, batch: ReplayBatch) -> dict[str, float]:
        """One critic step; every ``policy_delay``-th call also an actor step and the Polyak updates.

        Gradients are written out by hand (:mod:`drl_ros.core.backprop`): the same arithmetic as
        autograd on :func:`compute_td3_critic_loss` and :func:`compute_td3_actor_loss`.
        """
        policy = self.policy
        obs = policy.normalize(batch.obs)
        next_obs = policy.normalize(batch.next_obs)
        batch_size, obs_dim = obs.shape
        target = self._target(batch, next_obs)
        q, critic_tape = self._critic_net.forward(torch.cat([obs, batch.action], dim=-1))
        q = q.reshape(self.n_critics, -1)
        critic_loss = compute_td3_critic_loss(q, target)
        critic_grads, _ = self._critic_net.backward(critic_tape, (2.0 / batch_size * (q - target)).unsqueeze(-1))
        if not all_finite_no_grad([critic_loss, *critic_grads]):
            self.skipped_updates += 1
            return {"skipped": 1.0}
        adam_step([(self.critic_optimizer, critic_grads)])
        self.updates += 1
        metrics = {"critic_loss": critic_loss.item(), "q": q.mean().item()}
        if self.updates % self._policy_delay:
            return metrics
        # −mean Q_1(s, μ(s)): the first critic's input gradient (the critics do not move).
        pre_tanh, actor_tape = self._actor_net.forward(obs)
        action = torch.tanh(pre_tanh)
        q_new, q_new_tape = self._critic_net.forward(torch.cat([obs, action], dim=-1))
        actor_loss = compute_td3_actor_loss(q_new[0].reshape(-1))
        grad_q_new = torch.zeros_like(q_new)
        grad_q_new[0] = -1.0 / batch_size
        _, grad_input = self._critic_net.backward(q_new_tape, grad_q_new, param_grads=False, input_grad=True)
        assert grad_input is not None
        actor_grads, _ = self._actor_net.backward(actor_tape, grad_input[:, obs_dim:] * (1.0 - action.pow(2)))
        if not all_finite_no_grad([actor_loss, *actor_grads]):
            self.skipped_updates += 1
            return metrics
        adam_step([(self.actor_optimizer, actor_grads)])
        polyak_update(self._critic_params, self._critic_target_params, self.config.tau)
        polyak_update(self._actor_params, self._actor_target_params, self.config.tau)
        self.actor_updates += 1
        metrics["actor_loss"] = actor_loss.item()
        return metrics
