"""Policy evaluation: run whole episodes and report success rate and return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from drl_ros.core.policy import Policy

EVAL_SEED_OFFSET = 1_000_003
"""Evaluation episodes use seeds apart from training seeds, the same ones at every evaluation."""


@dataclass
class EvalResult:
    episodes: int
    mean_return: float
    std_return: float
    mean_length: float
    success_rate: float | None
    """Fraction of episodes whose last step reported ``info["is_success"]``; None if the env never does."""

    def summary(self) -> str:
        text = f"mean return {self.mean_return:.2f} ± {self.std_return:.2f} over {self.episodes} episodes"
        if self.success_rate is not None:
            successes = round(self.success_rate * self.episodes)
            text = f"success rate {100 * self.success_rate:.1f} % ({successes}/{self.episodes}), " + text
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "mean_return": self.mean_return, "std_return": self.std_return,
                "mean_length": self.mean_length, "success_rate": self.success_rate}


def evaluate(policy: Policy, env: gym.Env[Any, Any], episodes: int, seed: int, deterministic: bool = True,
             frame_callback: Any = None) -> EvalResult:
    """Run ``episodes`` full episodes with seeds ``seed + EVAL_SEED_OFFSET + i``."""
    returns, lengths, successes = [], [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + EVAL_SEED_OFFSET + episode)
        total, length, done = 0.0, 0, False
        while not done:
            step = policy.act(obs, deterministic=deterministic)
            action = step.env_action[0]
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            done = bool(terminated or truncated)
            if frame_callback is not None:
                frame_callback(env)
        returns.append(total)
        lengths.append(length)
        if "is_success" in info:
            successes.append(bool(info["is_success"]))
    success_rate = float(np.mean(successes)) if len(successes) == episodes else None
    return EvalResult(episodes, float(np.mean(returns)), float(np.std(returns)), float(np.mean(lengths)),
                      success_rate)
