"""One module per learning algorithm, and the table that builds one from a run configuration."""

from __future__ import annotations

from typing import Any

from drl_ros.core.algorithms.base import Algorithm
from drl_ros.core.algorithms.ppo import PPO, PPOConfig
from drl_ros.core.algorithms.sac import SAC, SACConfig
from drl_ros.core.spaces import BoxSpec, SpaceSpec

__all__ = ["Algorithm", "PPO", "PPOConfig", "SAC", "SACConfig", "make_algorithm"]


def make_algorithm(name: str, observation_spec: BoxSpec, action_spec: SpaceSpec, config: Any) -> Algorithm:
    """Build the algorithm ``name`` with its hyperparameter dataclass ``config``."""
    if name == "ppo":
        return PPO(observation_spec, action_spec, config)
    if name == "sac":
        if not isinstance(action_spec, BoxSpec):
            raise ValueError("algorithm 'sac' needs a continuous (Box) action space; use 'ppo' for discrete actions")
        return SAC(observation_spec, action_spec, config)
    raise ValueError(f"unknown algorithm {name!r}; choose one of 'ppo', 'sac'")
