"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016, "Continuous control with deep
reinforcement learning").

A deterministic actor ``μ(s)`` trained by the deterministic policy gradient ``∇_θ Q(s, μ_θ(s))``,
one critic trained on ``r + γ Q'(s', μ'(s'))`` with slowly tracking target copies of both
networks, and exploration noise added while collecting. Gaussian noise replaces the paper's
Ornstein-Uhlenbeck process (the TD3 paper and Stable-Baselines3 find it works as well). The update
is TD3's with one critic, no policy delay and no target smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from drl_ros.core.algorithms.base import ContinuousOffPolicyConfig
from drl_ros.core.algorithms.td3 import TD3
from drl_ros.core.buffers import ReplayBatch


@dataclass
class DDPGConfig(ContinuousOffPolicyConfig):
    """Hyperparameters of DDPG. Defaults follow Stable-Baselines3 unless a comment says otherwise."""

    action_noise: float = 0.1
    """Standard deviation of the Gaussian exploration noise, in normalized action units ([-1, 1])."""

    def __post_init__(self) -> None:
        super().__post_init__()
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
        next_action = torch.tanh(self._actor_target_net.predict(next_obs))
        next_q = self._critic_target_net.predict(torch.cat([next_obs, next_action], dim=-1)).reshape(-1)
        return compute_ddpg_target(batch.reward, batch.discount, next_q)
