"""Action-value networks for discrete actions, and the greedy actor built on them.

One network family serves DQN and its distributional relatives: an MLP trunk, then a head that
outputs ``K`` numbers per action, ``(B, A, K)``:

``expected``
    ``K = 1``: the expected return Q(s, a) (DQN).
``categorical``
    ``K = n_atoms`` logits of a distribution over fixed return atoms (C51).
``quantile``
    ``K = n_quantiles`` return quantiles at fixed fractions ``τ_i = (2i + 1) / 2N`` (QR-DQN).
``implicit``
    quantiles at fractions ``τ`` given as input, embedded with cosines (IQN); the output is
    ``(B, N, A)`` for ``N`` fractions per observation.

With ``dueling`` the head splits into a state-value stream and an advantage stream combined as
``V(s) + A(s, a) − mean_a A(s, a)`` (Wang et al. 2016), applied per atom / quantile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from drl_ros.core.actors import Actor
from drl_ros.core.networks import mlp

DISTRIBUTIONS = ("expected", "categorical", "quantile", "implicit")


class DuelingHead(nn.Module):
    """Linear head with ``K`` outputs per action: ``(..., in_dim)`` → ``(..., A, K)``."""

    def __init__(self, in_dim: int, n_actions: int, n_outputs: int, dueling: bool) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.n_outputs = n_outputs
        self.dueling = dueling
        self.advantage = nn.Linear(in_dim, n_actions * n_outputs)
        self.value = nn.Linear(in_dim, n_outputs) if dueling else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.advantage(features).unflatten(-1, (self.n_actions, self.n_outputs))
        if self.value is None:
            return out
        # Subtracting the mean advantage makes V and A identifiable (Wang et al. 2016, eq. 9).
        return self.value(features).unsqueeze(-2) + out - out.mean(dim=-2, keepdim=True)


class QNetwork(nn.Module):
    """MLP trunk + :class:`DuelingHead`: observations ``(B, obs_dim)`` → ``(B, A, K)``."""

    def __init__(self, obs_dim: int, n_actions: int, n_outputs: int, hidden_sizes: Sequence[int],
                 activation: str, dueling: bool) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_sizes, None, activation)
        self.head = DuelingHead(hidden_sizes[-1] if hidden_sizes else obs_dim, n_actions, n_outputs, dueling)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(obs))


class ImplicitQuantileNetwork(nn.Module):
    """IQN's Z_τ(s, a) (Dabney et al. 2018b, section 3.1).

    The state features ``ψ(s)`` (the MLP trunk) are multiplied element-wise by the fraction
    embedding ``φ(τ)_j = ReLU(Σ_i cos(π i τ) w_ij + b_j)``, ``i = 0 .. n_cos − 1``; then come
    ``merge_hidden_sizes`` hidden layers (the paper has one, after its convolutional torso) and
    the head. Everything after the merge runs once per fraction, so its cost is ``N`` times that
    of a plain layer; small tasks learn well with the head alone.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], activation: str, dueling: bool,
                 n_cos: int = 64, merge_hidden_sizes: Sequence[int] = ()) -> None:
        super().__init__()
        if not hidden_sizes:
            raise ValueError("an implicit quantile network needs at least one hidden layer")
        width = hidden_sizes[-1]
        self.psi = mlp(obs_dim, hidden_sizes, None, activation)
        self.phi = nn.Linear(n_cos, width)
        self.post = mlp(width, merge_hidden_sizes, None, activation)
        self.head = DuelingHead(merge_hidden_sizes[-1] if merge_hidden_sizes else width, n_actions, 1, dueling)
        self.cos_freq: torch.Tensor
        self.register_buffer("cos_freq", math.pi * torch.arange(n_cos, dtype=torch.float32), persistent=False)

    def forward(self, obs: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        """Quantiles ``(B, N, A)`` at fractions ``taus`` ``(B, N)``."""
        features = self.psi(obs).unsqueeze(1)  # (B, 1, W)
        embedding = F.relu(self.phi(torch.cos(taus.unsqueeze(-1) * self.cos_freq)))  # (B, N, W)
        return self.head(self.post(features * embedding)).squeeze(-1)


class QValueActor(Actor):
    """Greedy actor over a Q network: ``argmax_a Q(s, a)`` with ``Q`` the mean of the return
    distribution. Exploration (ε-greedy) belongs to the algorithm that collects experience, so the
    same saved policy acts greedily on a robot.

    ``sample`` is greedy too and reports log-probability 0.
    """

    kind = "q_value"
    atoms: torch.Tensor
    """``(n_atoms,)`` return atoms (categorical)."""
    taus: torch.Tensor
    """``(n_quantiles,)`` quantile fractions (quantile)."""
    policy_taus: torch.Tensor
    """``(n_policy_taus,)`` fractions averaged when acting (implicit)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], activation: str = "relu",
                 distribution: str = "expected", dueling: bool = False, n_atoms: int = 51, v_min: float = -10.0,
                 v_max: float = 10.0, n_quantiles: int = 200, n_cos: int = 64, n_policy_taus: int = 32,
                 merge_hidden_sizes: Sequence[int] = ()) -> None:
        super().__init__()
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown return distribution {distribution!r}; choose one of {DISTRIBUTIONS}")
        self.n_actions = n_actions
        self.distribution = distribution
        self.net: nn.Module
        if distribution == "expected":
            self.net = QNetwork(obs_dim, n_actions, 1, hidden_sizes, activation, dueling)
        elif distribution == "categorical":
            if n_atoms < 2 or not v_min < v_max:
                raise ValueError("categorical returns need n_atoms >= 2 and v_min < v_max")
            self.net = QNetwork(obs_dim, n_actions, n_atoms, hidden_sizes, activation, dueling)
            self.register_buffer("atoms", torch.linspace(v_min, v_max, n_atoms), persistent=False)
        elif distribution == "quantile":
            self.net = QNetwork(obs_dim, n_actions, n_quantiles, hidden_sizes, activation, dueling)
            self.register_buffer("taus", quantile_midpoints(n_quantiles), persistent=False)
        else:
            self.net = ImplicitQuantileNetwork(obs_dim, n_actions, hidden_sizes, activation, dueling, n_cos,
                                              merge_hidden_sizes)
            # Acting uses fixed, evenly spaced fractions rather than the paper's random ones, so the
            # greedy action is a deterministic function of the observation (exportable, testable);
            # their mean is the midpoint-rule estimate of the expected return.
            self.register_buffer("policy_taus", quantile_midpoints(n_policy_taus), persistent=False)

    def forward(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        """Raw network output: ``(B, A, K)``, or ``(B, N, A)`` quantiles at ``taus`` ``(B, N)`` for IQN."""
        if self.distribution == "implicit":
            if taus is None:
                taus = self.policy_taus.expand(obs.shape[0], -1)
            return self.net(obs, taus)
        return self.net(obs)

    def q_values_from(self, out: torch.Tensor) -> torch.Tensor:
        """Expected returns ``(B, A)`` from a :meth:`forward` output."""
        if self.distribution == "expected":
            return out.squeeze(-1)
        if self.distribution == "categorical":
            return torch.softmax(out, dim=-1) @ self.atoms
        if self.distribution == "quantile":
            return out.mean(dim=-1)
        return out.mean(dim=1)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, A)`` expected returns of normalized observations ``(B, obs_dim)``."""
        return self.q_values_from(self(obs))

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        action = self.q_values(obs).argmax(-1)
        return action, torch.zeros(action.shape[0])

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs).argmax(-1)


def quantile_midpoints(n: int) -> torch.Tensor:
    """``τ̂_i = (2i + 1) / 2N``, ``i = 0 .. N − 1``: the fractions whose quantiles minimize the
    1-Wasserstein distance to the true distribution (Dabney et al. 2018a, lemma 2). ``(N,)``"""
    return (torch.arange(n, dtype=torch.float32) + 0.5) / n

