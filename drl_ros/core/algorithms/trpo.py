"""Trust Region Policy Optimization (Schulman et al. 2015).

Each rollout moves the policy along the natural gradient: maximize the surrogate
``L(θ) = E[π_θ(a|s) / π_old(a|s) · A]`` subject to ``E_s[KL(π_old(·|s) ‖ π_θ(·|s))] ≤ δ``. The step
direction ``x ≈ F⁻¹ g`` solves ``F x = g`` by conjugate gradient, where ``F`` is the Fisher matrix
(the Hessian of the mean KL at θ_old) and only Fisher-vector products are ever formed; the step is
scaled to the edge of the trust region, ``sqrt(2δ / xᵀFx) · x``, then halved back (backtracking line
search) until the KL constraint holds and the surrogate improves. The critic is fitted separately
with Adam on the λ-returns. Defaults follow sb3-contrib's TRPO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from drl_ros.core.actors import Actor, CategoricalActor, GaussianActor
from drl_ros.core.algorithms.base import (
    ActorCriticNetworksConfig,
    OnPolicyAlgorithm,
    all_finite,
    fused_adam,
    make_policy_and_value,
)
from drl_ros.core.buffers import RolloutBatch
from drl_ros.core.spaces import BoxSpec, SpaceSpec


@dataclass
class TRPOConfig(ActorCriticNetworksConfig):
    """Hyperparameters of TRPO. Defaults follow sb3-contrib."""

    learning_rate: float = 1e-3
    """Adam step size of the critic (the policy step size comes from the trust region)."""
    n_steps: int = 2048
    """Steps per env in each rollout."""
    batch_size: int = 128
    """Minibatch size of the critic updates."""
    n_critic_updates: int = 10
    """Passes of the critic over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE λ."""
    target_kl: float = 0.01
    """Trust-region radius δ: the largest mean KL(π_old ‖ π_new) a step may take."""
    cg_max_steps: int = 15
    """Conjugate-gradient iterations for the step direction."""
    cg_damping: float = 0.1
    """Added to the Fisher-vector product, ``(F + damping·I) v``, to keep the solve well conditioned."""
    line_search_shrinking_factor: float = 0.8
    """Step fraction multiplier after each rejected line-search candidate."""
    line_search_max_iter: int = 10
    """Line-search candidates tried before the step is abandoned (the policy then stays unchanged)."""
    normalize_advantage: bool = True
    """Standardize advantages over the rollout."""

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.batch_size < 1 or self.n_critic_updates < 0 or self.cg_max_steps < 1:
            raise ValueError("n_steps, batch_size and cg_max_steps must be positive, n_critic_updates >= 0")
        if self.target_kl <= 0.0:
            raise ValueError(f"target_kl must be positive, got {self.target_kl}")
        if not 0.0 < self.line_search_shrinking_factor < 1.0:
            raise ValueError("line_search_shrinking_factor must be in (0, 1)")
        if not 0.0 <= self.gae_lambda <= 1.0 or not 0.0 <= self.gamma <= 1.0:
            raise ValueError("gamma and gae_lambda must be in [0, 1]")


def conjugate_gradient(matrix_vector_product: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       max_steps: int, residual_tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve ``A x = b`` for a symmetric positive-definite ``A`` given only ``v ↦ A v``
    (Hestenes & Stiefel 1952; Nocedal & Wright, algorithm 5.2). Starts at ``x = 0``; ``b`` is ``(n,)``."""
    x = torch.zeros_like(b)
    residual = b.clone()  # r = b − A x with x = 0
    direction = b.clone()
    residual_sq = residual.dot(residual)
    for _ in range(max_steps):
        if residual_sq <= residual_tol:
            break
        a_direction = matrix_vector_product(direction)
        alpha = residual_sq / direction.dot(a_direction)
        x = x + alpha * direction
        residual = residual - alpha * a_direction
        new_residual_sq = residual.dot(residual)
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return x


def action_distribution(actor: Actor, obs: torch.Tensor) -> torch.distributions.Distribution:
    """The actor's action distribution on ``(B, obs_dim)`` observations, for KL divergences."""
    if isinstance(actor, CategoricalActor):
        return actor.distribution(obs)
    if isinstance(actor, GaussianActor):
        mean = actor.mean_net(obs)
        return torch.distributions.Normal(mean, actor.log_std.exp().expand_as(mean))
    raise TypeError(f"TRPO needs a categorical or Gaussian actor, got {type(actor).__name__}")


def mean_kl(old: torch.distributions.Distribution, new: torch.distributions.Distribution) -> torch.Tensor:
    """``E_s[KL(old(·|s) ‖ new(·|s))]``, summed over action dimensions of factorized distributions."""
    kl = torch.distributions.kl_divergence(old, new)
    return (kl.sum(-1) if kl.dim() > 1 else kl).mean()


def fisher_vector_product(kl: torch.Tensor, params: list[nn.Parameter],
                          damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v ↦ (F + damping·I) v`` where ``F = ∇²_θ KL`` at θ_old, by double backpropagation (Pearlmutter's
    trick: ``∇_θ (∇_θ KL · v)``). ``kl`` must be built with a graph to ``params``; vectors are ``(n,)``
    in the layout of ``parameters_to_vector(params)``. The KL gradient is formed once and each
    product costs one more backward pass, so conjugate gradient pays that per iteration only."""
    grads = torch.autograd.grad(kl, params, create_graph=True)
    flat_grad = torch.cat([g.reshape(-1) for g in grads])

    def product(vector: torch.Tensor) -> torch.Tensor:
        hvp = torch.autograd.grad(flat_grad.dot(vector), params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hvp]).detach() + damping * vector

    return product


def backtracking_line_search(evaluate: Callable[[float], tuple[float, float]], base_objective: float,
                             max_kl: float, shrinking_factor: float, max_iter: int) -> float | None:
    """Try step fractions ``1, c, c², …`` of the full trust-region step.

    ``evaluate(fraction)`` moves the parameters to ``θ_old + fraction · step`` and returns the
    surrogate objective there and the mean KL from the old policy. The first fraction whose KL is
    at most ``max_kl`` and whose objective is above ``base_objective`` is accepted and returned;
    None means every candidate was rejected (the caller restores ``θ_old``).
    """
    fraction = 1.0
    for _ in range(max_iter):
        objective, kl = evaluate(fraction)
        if kl <= max_kl and objective > base_objective:
            return fraction
        fraction *= shrinking_factor
    return None


def compute_trpo_surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Importance-sampled surrogate ``E[π_θ(a|s) / π_old(a|s) · A]`` (to maximize); inputs ``(N,)``."""
    return ((log_prob - old_log_prob).exp() * advantage).mean()


class TRPO(OnPolicyAlgorithm):
    """TRPO for Box (Gaussian) and Discrete (categorical) action spaces."""

    name: ClassVar[str] = "trpo"

    def __init__(self, observation_spec: BoxSpec, action_spec: SpaceSpec, config: TRPOConfig) -> None:
        super().__init__()
        self.config = config
        self.policy, self.critic = make_policy_and_value(observation_spec, action_spec, config)
        self._actor_params = [p for p in self.policy.actor.parameters() if p.requires_grad]
        self.critic_optimizer = fused_adam(self.critic.parameters(), config.learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_optimizer}

    @torch.no_grad()
    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, self.policy.observation_spec.dim)
        return self.critic(self.policy.normalize(obs_t)).squeeze(-1).numpy()

    def _policy_step(self, obs: torch.Tensor, action: torch.Tensor, old_log_prob: torch.Tensor,
                     advantage: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        actor = self.policy.actor
        assert isinstance(actor, (CategoricalActor, GaussianActor))
        params = self._actor_params
        with torch.no_grad():
            old_dist = action_distribution(actor, obs)
        log_prob, _ = actor.log_prob_entropy(obs, action)
        surrogate = compute_trpo_surrogate(log_prob, old_log_prob, advantage)
        if not all_finite(surrogate):
            self.skipped_updates += 1
            return {"skipped": 1.0}
        gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate, params)])
        fvp = fisher_vector_product(mean_kl(old_dist, action_distribution(actor, obs)), params, cfg.cg_damping)
        direction = conjugate_gradient(fvp, gradient, cfg.cg_max_steps)
        curvature = direction.dot(fvp(direction))
        if not all_finite(direction, curvature) or curvature.item() <= 0.0:
            self.skipped_updates += 1
            return {"skipped": 1.0}
        # The largest step along `direction` whose quadratic KL model equals δ: ½ β² xᵀFx = δ.
        full_step = torch.sqrt(2.0 * cfg.target_kl / curvature) * direction
        old_params = parameters_to_vector(params).detach().clone()
        base_objective = surrogate.item()
        last_kl = [0.0]

        @torch.no_grad()
        def evaluate(fraction: float) -> tuple[float, float]:
            vector_to_parameters(old_params + fraction * full_step, params)
            new_log_prob, _ = actor.log_prob_entropy(obs, action)
            new_kl = mean_kl(old_dist, action_distribution(actor, obs)).item()
            last_kl[0] = new_kl
            return compute_trpo_surrogate(new_log_prob, old_log_prob, advantage).item(), new_kl

        fraction = backtracking_line_search(evaluate, base_objective, cfg.target_kl,
                                            cfg.line_search_shrinking_factor, cfg.line_search_max_iter)
        if fraction is None:
            vector_to_parameters(old_params, params)
            return {"line_search_fraction": 0.0, "kl": 0.0, "surrogate": base_objective}
        self.updates += 1
        return {"line_search_fraction": fraction, "kl": last_kl[0], "surrogate": base_objective}

    def update(self, rollout: RolloutBatch, rng: np.random.Generator | None = None) -> dict[str, float]:
        """One trust-region policy step, then ``n_critic_updates`` minibatch epochs of the critic."""
        cfg = self.config
        rng = rng if rng is not None else np.random.default_rng()
        obs = self.policy.normalize(rollout.obs)
        advantage = rollout.advantage
        if cfg.normalize_advantage and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        metrics = self._policy_step(obs, rollout.action, rollout.log_prob, advantage)
        obs = obs.detach()
        total = obs.shape[0]
        value_losses = []
        for _ in range(cfg.n_critic_updates):
            order = torch.from_numpy(rng.permutation(total))
            for start in range(0, total, cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                value_loss = (rollout.returns[idx] - self.critic(obs[idx]).squeeze(-1)).pow(2).mean()
                if not all_finite(value_loss):
                    self.skipped_updates += 1
                    continue
                self.critic_optimizer.zero_grad(set_to_none=True)
                value_loss.backward()
                self.critic_optimizer.step()
                value_losses.append(value_loss.item())
        metrics["value_loss"] = float(np.mean(value_losses)) if value_losses else float("nan")
        actor = self.policy.actor
        if isinstance(actor, GaussianActor):
            metrics["std"] = float(actor.log_std.exp().mean())
        return metrics
