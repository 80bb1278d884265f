"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016, "Continuous control with deep
reinforcement learning").

A deterministic actor ``μ(s)`` trained by the deterministic policy gradient ``∇_θ Q(s, μ_θ(s))``,
one critic trained on ``r + γ Q'(s', μ'(s'))`` with slowly tracking target copies of both
networks, and exploration noise added while collecting. Gaussian noise replaces the paper's
Ornstein-Uhlenbeck process (the TD3 paper and Stable-Baselines3 find it works as well). The update
is TD3's with one critic, no policy delay and no target smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from drl_ros.core.algorithms.td3 import TD3
from drl_ros.core.buffers import ReplayBatch
from drl_ros.core.her import HerConfig


@dataclass
class DDPGConfig:
    """Hyperparameters of DDPG. Defaults follow Stable-Baselines3 unless a comment says otherwise."""

    learning_rate: float = 1e-3
    """Adam step size of actor and critic."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 1000
    """Env steps taken with uniform random actions before learning starts (SB3: 100)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    tau: float = 0.005
    """Polyak coefficient of the target actor and critic."""
    gamma: float = 0.99
    """Discount factor."""
    train_freq: int = 1
    """Vector-env steps between rounds of gradient steps."""
    gradient_steps: int = 1
    """Gradient steps per round; -1 means one per env step collected in the round."""
    n_step: int = 1
    """Rewards summed per target (1 is plain one-step TD)."""
    action_noise: float = 0.1
    """Standard deviation of the Gaussian exploration noise, in normalized action units ([-1, 1])."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of the actor's and the critic's hidden layers (SB3: [400, 300])."""
    activation: str = "relu"
    """Hidden activation."""
    normalize_observations: bool = False
    """Normalize observations with running statistics kept in the policy."""
    her: HerConfig | None = None
    """Hindsight experience replay for goal-conditioned envs; None disables it."""

    def __post_init__(self) -> None:
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.batch_size < 1 or self.n_step < 1 or self.train_freq < 1:
            raise ValueError("batch_size, n_step and train_freq must be positive")
        if self.gradient_steps == 0 or self.gradient_steps < -1:
            raise ValueError("gradient_steps must be positive or -1")
        if self.action_noise < 0.0:
            raise ValueError("action_noise must be non-negative")


def compute_ddpg_target(reward: torch.Tensor, discount: torch.Tensor, next_q: torch.Tensor) -> torch.Tensor:
    """``y = r + discount · Q'(s', μ'(s'))``; all ``(B,)``, ``discount`` holds ``γ^n`` and 0 on termination."""
    return reward + discount * next_q


class DDPG(TD3):
    """DDPG on a bounded Box action space."""

    name: ClassVar[str] = "ddpg"
    n_critics: ClassVar[int] = 1
    smoothing: ClassVar[bool] = False

    config: DDPGConfig  # type: ignore[assignment]

    def _target(self, batch: ReplayBatch, next_obs: torch.Tensor) -> torch.Tensor:
        next_action = self.actor_target(next_obs)
        next_q = self.critic_target(torch.cat([next_obs, next_action], dim=-1)).reshape(-1)
        return compute_ddpg_target(batch.reward, batch.discount, next_q)
