"""Action distributions with their networks: what a policy samples from.

Every actor works in a normalized action space: Box actions live in ``[-1, 1]`` per dimension
(the policy maps them to the env's bounds), discrete actions are integer indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from drl_ros.core.backprop import MLPBackprop
from drl_ros.core.networks import mlp

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


class Actor(nn.Module):
    """Base class: maps normalized observations ``(B, obs_dim)`` to an action distribution."""

    kind: str = "actor"

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(action, log_prob)``: shapes ``(B, act_dim)`` (``(B,)`` for discrete) and ``(B,)``."""
        raise NotImplementedError

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The mode / mean action, the one deployment and ONNX export use."""
        raise NotImplementedError


class CategoricalActor(Actor):
    """Softmax over ``n`` discrete actions."""

    kind = "categorical"

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], activation: str = "tanh",
                 orthogonal: bool = True) -> None:
        super().__init__()
        self.logits_net = mlp(obs_dim, hidden_sizes, n_actions, activation, output_gain=0.01, orthogonal=orthogonal)
        self.backprop = MLPBackprop(self.logits_net)
        """The logits network's passes without nn.Module calls or autograd: acting, PPO's update."""

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.logits_net(obs))

    # sample and log_prob_entropy work on log-softmax directly: building a validated
    # torch.distributions.Categorical costs several times the network itself on the acting path.
    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = torch.log_softmax(self.backprop.predict(obs), dim=-1)
        if deterministic:
            action = log_probs.argmax(-1)
        else:
            # torch.multinomial's own method for one draw (argmax of p / Exp(1)): the same actions
            # from the same generator state, without its input checks, a third of its cost here.
            probs = log_probs.exp()
            action = (probs / torch.empty_like(probs).exponential_()).argmax(-1)
        return action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits_net(obs).argmax(-1)

    def log_prob_entropy(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability ``(B,)`` of given actions and the entropy ``(B,)``, for policy-gradient losses."""
        log_prob, entropy, _ = self.log_prob_entropy_of(self.logits_net(obs), action)
        return log_prob, entropy

    def log_prob_entropy_of(self, logits: torch.Tensor, action: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """:meth:`log_prob_entropy` from the network's output, and what
        :meth:`log_prob_entropy_backward` needs of it."""
        log_probs = torch.log_softmax(logits, dim=-1)
        action = action.long().reshape(-1, 1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(-1)
        return log_probs.gather(-1, action).squeeze(-1), entropy, (log_probs, probs, entropy, action)

    def log_prob_entropy_backward(self, saved: tuple[torch.Tensor, ...], grad_log_prob: torch.Tensor,
                                  grad_entropy: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """For ``grad_log_prob`` per sample and ``grad_entropy`` per sample's entropy: the gradient
        w.r.t. the network's output and those of the actor's own parameters (none here)."""
        log_probs, probs, entropy, action = saved
        # d log p_a / d logits = onehot(a) − p;  d H / d logits = −p (log p + H).
        grad_logits = -grad_log_prob.unsqueeze(-1) * probs
        grad_logits.scatter_add_(-1, action, grad_log_prob.unsqueeze(-1))
        if grad_entropy:
            grad_logits -= grad_entropy * probs * (log_probs + entropy.unsqueeze(-1))
        return grad_logits, []


class GaussianActor(Actor):
    """Diagonal Gaussian with a state-independent learned log standard deviation (PPO's default).

    Samples are unbounded; the policy clips them to ``[-1, 1]`` before scaling to the env bounds,
    while learning uses the unclipped sample so the log-probability stays exact.
    """

    kind = "gaussian"

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str = "tanh",
                 log_std_init: float = 0.0, orthogonal: bool = True) -> None:
        super().__init__()
        self.mean_net = mlp(obs_dim, hidden_sizes, act_dim, activation, output_gain=0.01, orthogonal=orthogonal)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))
        self.backprop = MLPBackprop(self.mean_net)
        """The mean network's passes without nn.Module calls or autograd: acting, PPO's update."""

    def _normal(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean_net(obs), self.log_std.exp().expand(obs.shape[0], -1))

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.backprop.predict(obs)
        # Closed forms in the standard-normal noise: a handful of ops instead of a Normal object,
        # since this runs on every acting step.
        log_norm = self.log_std.sum() + 0.5 * math.log(2 * math.pi) * mean.shape[-1]
        if deterministic:
            return mean, (-log_norm).expand(mean.shape[0])
        noise = torch.randn_like(mean)
        return mean + self.log_std.exp() * noise, -0.5 * noise.pow(2).sum(-1) - log_norm

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean_net(obs)

    def log_prob_entropy(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_prob, entropy, _ = self.log_prob_entropy_of(self.mean_net(obs), action)
        return log_prob, entropy

    def log_prob_entropy_of(self, mean: torch.Tensor, action: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """:meth:`log_prob_entropy` from the network's output, and what
        :meth:`log_prob_entropy_backward` needs of it."""
        act_dim = mean.shape[-1]
        z = (action - mean) * torch.exp(-self.log_std)
        log_norm = self.log_std.sum() + 0.5 * math.log(2 * math.pi) * act_dim
        log_prob = -0.5 * z.pow(2).sum(-1) - log_norm
        # A state-independent std gives every state the same entropy.
        entropy = (self.log_std.sum() + (0.5 + 0.5 * math.log(2 * math.pi)) * act_dim).expand(mean.shape[0])
        return log_prob, entropy, (z,)

    def log_prob_entropy_backward(self, saved: tuple[torch.Tensor, ...], grad_log_prob: torch.Tensor,
                                  grad_entropy: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """For ``grad_log_prob`` per sample and ``grad_entropy`` per sample's entropy: the gradient
        w.r.t. the network's output (the mean) and that of ``log_std``, the actor's own parameter,
        which ``parameters()`` lists before its network's."""
        (z,) = saved
        # log p = −½ Σ z² − Σ log σ − c with z = (a − μ)/σ: d/dμ = z/σ, d/dlog σ = z² − 1; H = Σ log σ + c.
        grad_mean = grad_log_prob.unsqueeze(-1) * z / self.log_std.exp()
        grad_log_std = (grad_log_prob.unsqueeze(-1) * (z.pow(2) - 1.0)).sum(0) + grad_entropy * z.shape[0]
        return grad_mean, [grad_log_std]


def squashed_gaussian_log_prob(noise: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
    """``log π(tanh(u))`` for ``u = mean + exp(log_std) · noise``, summed over action dimensions.

    The Gaussian term is written in the standard-normal ``noise`` (what ``(u − mean) / std``
    equals), so under the reparameterization its gradient is ``−1`` per ``log_std`` and ``0`` per
    mean, as the math says, with no rounding from dividing by the std.
    """
    normal_log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    # log(1 - tanh(u)^2) written in a form that stays finite for large |u|.
    correction = (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)
    return normal_log_prob - correction


class SquashedGaussianActor(Actor):
    """Gaussian squashed by ``tanh`` into ``[-1, 1]`` with a state-dependent std (SAC).

    ``log_prob`` includes the change-of-variables term of the tanh (Haarnoja et al. 2018, app. C).
    """

    kind = "squashed_gaussian"

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_sizes, None, activation)
        last = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.mean_head = nn.Linear(last, act_dim)
        self.log_std_head = nn.Linear(last, act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(obs)
        log_std = self.log_std_head(features).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.mean_head(features), log_std

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self(obs)
        if deterministic:
            noise = torch.zeros_like(mean)
            pre_tanh = mean
        else:
            noise = torch.randn_like(mean)
            pre_tanh = mean + log_std.exp() * noise
        return torch.tanh(pre_tanh), squashed_gaussian_log_prob(noise, log_std, pre_tanh)

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])


class DeterministicActor(Actor):
    """Deterministic policy ``μ(s) = tanh(f(s))`` in ``[-1, 1]`` (DDPG, TD3).

    It has no distribution: ``sample`` returns the same action with a zero log-probability, and
    exploration noise is added by the algorithm while collecting, never by the policy.
    """

    kind = "deterministic"

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, act_dim, activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        action = self(obs)
        return action, torch.zeros(action.shape[0])

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)


def build_actor(kind: str, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str,
                log_std_init: float = 0.0, actor_kwargs: dict[str, Any] | None = None) -> Actor:
    """Construct an actor from the names stored in a policy file; ``actor_kwargs`` holds the
    options of kinds that have more (e.g. a Q network's return distribution)."""
    if kind == "q_value":
        # Imported here: q_networks builds on Actor from this module.
        from drl_ros.core.q_networks import QValueActor

        return QValueActor(obs_dim, act_dim, hidden_sizes, activation, **(actor_kwargs or {}))
    if kind == CategoricalActor.kind:
        return CategoricalActor(obs_dim, act_dim, hidden_sizes, activation)
    if kind == GaussianActor.kind:
        return GaussianActor(obs_dim, act_dim, hidden_sizes, activation, log_std_init)
    if kind == SquashedGaussianActor.kind:
        return SquashedGaussianActor(obs_dim, act_dim, hidden_sizes, activation)
    if kind == DeterministicActor.kind:
        return DeterministicActor(obs_dim, act_dim, hidden_sizes, activation)
    raise ValueError(f"unknown actor kind {kind!r}")
