"""Distributional DQN: learn the distribution of the return ``Z(s, a)``, act on its mean.

- C51 (Bellemare et al. 2017, "A Distributional Perspective on Reinforcement Learning"): a
  categorical distribution on ``n_atoms`` fixed atoms in ``[v_min, v_max]``; the Bellman target
  ``r + γ z`` is projected back onto the atoms and learned by cross-entropy.
- QR-DQN (Dabney et al. 2018a, "Distributional Reinforcement Learning with Quantile Regression"):
  ``N`` quantiles at fixed fractions ``τ̂_i = (2i + 1) / 2N``, learned with the quantile Huber loss.
- IQN (Dabney et al. 2018b, "Implicit Quantile Networks for Distributional Reinforcement
  Learning"): the fraction ``τ`` is an input, sampled uniformly for every loss term.

All three reuse DQN's machinery (:class:`~drl_ros.core.algorithms.dqn.QLearningAlgorithm`), so
``double``, ``dueling``, ``prioritized`` and ``n_step`` apply to them too; with prioritized replay
the per-sample distributional loss is the priority, as in Rainbow (Hessel et al. 2018).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from drl_ros.core.algorithms.dqn import DQNConfig, QLearningAlgorithm
from drl_ros.core.buffers import ReplayBatch
from drl_ros.core.spaces import BoxSpec, DiscreteSpec


# -- C51 ---------------------------------------------------------------------------------------
@dataclass
class C51Config(DQNConfig):
    """Hyperparameters of C51: DQN's, plus the support of the return distribution."""

    n_atoms: int = 51
    """Atoms of the categorical return distribution (the paper's 51 gives the name)."""
    v_min: float = -10.0
    """Smallest representable return; target mass below it lands on this atom."""
    v_max: float = 10.0
    """Largest representable return; target mass above it lands on this atom."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_atoms < 2 or not self.v_min < self.v_max:
            raise ValueError("C51 needs n_atoms >= 2 and v_min < v_max")


def compute_categorical_projection(next_probs: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor,
                                   atoms: torch.Tensor) -> torch.Tensor:
    """Project the target distribution ``r + discount · z`` onto the fixed atoms ``z``.

    Bellemare et al. 2017, eq. 7: ``(Φ T̂ Z)_i = Σ_j [1 − |clip(r + γ z_j) − z_i| / Δz]_0^1 p_j``,
    i.e. each target atom, clipped to ``[v_min, v_max]``, splits its probability between the two
    nearest atoms in proportion to closeness. Where the episode terminated (``discount`` 0) all
    mass lands around ``r``.

    ``next_probs`` ``(B, K)`` are the probabilities ``p_j`` at ``s'`` for the chosen next action,
    ``reward`` and ``discount`` ``(B,)``, ``atoms`` ``(K,)`` evenly spaced. Returns ``(B, K)``.
    """
    v_min, v_max = atoms[0], atoms[-1]
    delta_z = (v_max - v_min) / (atoms.shape[0] - 1)
    target_atoms = (reward.unsqueeze(1) + discount.unsqueeze(1) * atoms.unsqueeze(0)).clamp(v_min, v_max)  # (B, K)
    # weight[b, i, j]: share of target atom j that goes to atom i.
    weight = (1.0 - (target_atoms.unsqueeze(1) - atoms.view(1, -1, 1)).abs() / delta_z).clamp(0.0, 1.0)
    return (weight * next_probs.unsqueeze(1)).sum(dim=2)


def compute_c51_loss(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy ``−Σ_i m_i log p_i(s, a)`` ``(B,)`` between the projected target
    ``m`` ``(B, K)`` and the predicted distribution given by ``logits`` ``(B, K)`` of the taken action."""
    return -(target_probs * torch.log_softmax(logits, dim=1)).sum(dim=1)


class C51(QLearningAlgorithm):
    """Categorical DQN."""

    name: ClassVar[str] = "c51"
    config: C51Config

    def __init__(self, observation_spec: BoxSpec, action_spec: DiscreteSpec, config: C51Config) -> None:
        super().__init__(observation_spec, action_spec, config,
                         {"distribution": "categorical", "n_atoms": config.n_atoms, "v_min": config.v_min,
                          "v_max": config.v_max})

    def compute_sample_losses(self, batch: ReplayBatch, obs: torch.Tensor,
                              next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        atoms = self.q_net.atoms
        with torch.no_grad():
            next_logits = self.q_target(next_obs)  # (B, A, K)
            next_probs = torch.softmax(next_logits, dim=2)
            chooser = self.q_net.q_values(next_obs) if self.config.double else next_probs @ atoms
            next_action = chooser.argmax(dim=1)
            chosen = next_probs[torch.arange(next_probs.shape[0]), next_action]  # (B, K)
            target = compute_categorical_projection(chosen, batch.reward, batch.discount, atoms)
        logits = self.q_net(obs)
        taken = logits[torch.arange(logits.shape[0]), batch.action.long().view(-1)]  # (B, K)
        losses = compute_c51_loss(taken, target)
        q = (torch.softmax(taken.detach(), dim=1) @ atoms).mean().item()
        return losses, losses.detach(), {"q": q}


# -- quantile losses -----------------------------------------------------------------------------
def compute_quantile_huber_loss(quantiles: torch.Tensor, target: torch.Tensor, taus: torch.Tensor,
                                kappa: float = 1.0) -> torch.Tensor:
    """Quantile Huber loss per sample ``(B,)`` (Dabney et al. 2018a, eq. 10; 2018b, eq. 3).

    ``Σ_i mean_j ρ^κ_{τ_i}(T θ_j − θ_i)`` with ``ρ^κ_τ(δ) = |τ − 1{δ < 0}| · L_κ(δ) / κ`` and
    ``L_κ`` the Huber loss: each predicted quantile ``θ_i`` at fraction ``τ_i`` is regressed on
    every target sample ``T θ_j``, overestimates weighted ``1 − τ_i`` and underestimates ``τ_i``.

    ``quantiles`` ``(B, N)`` predicted, ``target`` ``(B, N')`` target samples (no grad),
    ``taus`` ``(N,)`` or ``(B, N)`` the fractions of the predicted quantiles.
    """
    delta = target.unsqueeze(1) - quantiles.unsqueeze(2)  # (B, N, N'): δ_ij = T θ_j − θ_i
    abs_delta = delta.abs()
    huber = torch.where(abs_delta <= kappa, 0.5 * delta.pow(2), kappa * (abs_delta - 0.5 * kappa))
    taus = taus.expand(quantiles.shape).unsqueeze(2)  # (B, N, 1)
    rho = (taus - (delta.detach() < 0).to(delta.dtype)).abs() * huber / kappa
    return rho.mean(dim=2).sum(dim=1)


# -- QR-DQN --------------------------------------------------------------------------------------
@dataclass
class QRDQNConfig(DQNConfig):
    """Hyperparameters of QR-DQN: DQN's, plus the number of quantiles."""

    n_quantiles: int = 200
    """Quantiles ``N`` of the return distribution, at fractions ``(2i + 1) / 2N``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_quantiles < 1:
            raise ValueError(f"n_quantiles must be positive, got {self.n_quantiles}")


def compute_quantile_target(reward: torch.Tensor, discount: torch.Tensor, next_quantiles: torch.Tensor) -> torch.Tensor:
    """Target samples ``T θ_j = r + discount · θ_j(s', a*)`` ``(B, N')`` from the next state's
    quantiles ``(B, N')`` of the chosen action."""
    return reward.unsqueeze(1) + discount.unsqueeze(1) * next_quantiles


class QRDQN(QLearningAlgorithm):
    """Quantile-regression DQN."""

    name: ClassVar[str] = "qrdqn"
    config: QRDQNConfig

    def __init__(self, observation_spec: BoxSpec, action_spec: DiscreteSpec, config: QRDQNConfig) -> None:
        super().__init__(observation_spec, action_spec, config,
                         {"distribution": "quantile", "n_quantiles": config.n_quantiles})

    def compute_sample_losses(self, batch: ReplayBatch, obs: torch.Tensor,
                              next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        rows = torch.arange(obs.shape[0])
        with torch.no_grad():
            next_quantiles = self.q_target(next_obs)  # (B, A, N)
            chooser = self.q_net.q_values(next_obs) if self.config.double else next_quantiles.mean(dim=2)
            chosen = next_quantiles[rows, chooser.argmax(dim=1)]  # (B, N)
            target = compute_quantile_target(batch.reward, batch.discount, chosen)
        quantiles = self.q_net(obs)[rows, batch.action.long().view(-1)]  # (B, N)
        losses = compute_quantile_huber_loss(quantiles, target, self.q_net.taus, self.config.huber_kappa)
        return losses, losses.detach(), {"q": quantiles.detach().mean().item()}


# -- IQN -----------------------------------------------------------------------------------------
@dataclass
class IQNConfig(DQNConfig):
    """Hyperparameters of IQN: DQN's, plus how many fractions τ are sampled where."""

    n_taus: int = 64
    """Fractions ``N`` sampled for the predicted quantiles of each transition."""
    n_target_taus: int = 64
    """Fractions ``N'`` sampled for the target quantiles of each transition."""
    n_policy_taus: int = 32
    """Fractions ``K`` averaged to estimate Q when choosing actions (evenly spaced, see
    :class:`~drl_ros.core.q_networks.QValueActor`)."""
    n_cos: int = 64
    """Cosine features of the fraction embedding."""
    merge_hidden_sizes: list[int] = field(default_factory=list)
    """Hidden layers between the state × fraction product and the head (the paper has one of 512
    units); each costs ``n_taus`` times a trunk layer per update."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.n_taus, self.n_target_taus, self.n_policy_taus, self.n_cos) < 1:
            raise ValueError("n_taus, n_target_taus, n_policy_taus and n_cos must be positive")


class IQN(QLearningAlgorithm):
    """Implicit quantile networks."""

    name: ClassVar[str] = "iqn"
    config: IQNConfig

    def __init__(self, observation_spec: BoxSpec, action_spec: DiscreteSpec, config: IQNConfig) -> None:
        super().__init__(observation_spec, action_spec, config,
                         {"distribution": "implicit", "n_cos": config.n_cos, "n_policy_taus": config.n_policy_taus,
                          "merge_hidden_sizes": list(config.merge_hidden_sizes)})

    def compute_sample_losses(self, batch: ReplayBatch, obs: torch.Tensor,
                              next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        cfg = self.config
        batch_size = obs.shape[0]
        rows = torch.arange(batch_size)
        with torch.no_grad():
            # The next action maximizes the mean over K fractions (paper: of the target network;
            # with ``double``, of the online one).
            chooser = self.q_net if cfg.double else self.q_target
            next_action = chooser.q_values(next_obs).argmax(dim=1)
            target_taus = torch.rand(batch_size, cfg.n_target_taus)
            next_quantiles = self.q_target(next_obs, target_taus)[rows, :, next_action]  # (B, N')
            target = compute_quantile_target(batch.reward, batch.discount, next_quantiles)
        taus = torch.rand(batch_size, cfg.n_taus)
        quantiles = self.q_net(obs, taus)[rows, :, batch.action.long().view(-1)]  # (B, N)
        losses = compute_quantile_huber_loss(quantiles, target, taus, cfg.huber_kappa)
        return losses, losses.detach(), {"q": quantiles.detach().mean().item()}

