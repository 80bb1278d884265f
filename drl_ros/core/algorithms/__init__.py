"""One module per learning algorithm, and the registry that builds one from a run configuration.

Adding an algorithm: write ``core/algorithms/<name>.py`` with a config dataclass and an
:class:`OffPolicyAlgorithm` or :class:`OnPolicyAlgorithm` subclass, add it to ``ALGORITHMS``
below, and add a ``<name>:`` section to :class:`drl_ros.core.config.TrainConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drl_ros.core.algorithms.a2c import A2C, A2CConfig
from drl_ros.core.algorithms.base import Algorithm, OffPolicyAlgorithm, OnPolicyAlgorithm
from drl_ros.core.algorithms.ddpg import DDPG, DDPGConfig
from drl_ros.core.algorithms.distributional import C51, IQN, QRDQN, C51Config, IQNConfig, QRDQNConfig
from drl_ros.core.algorithms.dqn import DQN, DQNConfig
from drl_ros.core.algorithms.ppo import PPO, PPOConfig
from drl_ros.core.algorithms.reinforce import Reinforce, ReinforceConfig
from drl_ros.core.algorithms.sac import SAC, SACConfig
from drl_ros.core.algorithms.td3 import TD3, TD3Config
from drl_ros.core.algorithms.trpo import TRPO, TRPOConfig
from drl_ros.core.spaces import BoxSpec, DiscreteSpec, SpaceSpec

__all__ = [
    "A2C",
    "A2CConfig",
    "ALGORITHMS",
    "C51",
    "C51Config",
    "DDPG",
    "DDPGConfig",
    "DQN",
    "DQNConfig",
    "IQN",
    "IQNConfig",
    "PPO",
    "PPOConfig",
    "QRDQN",
    "QRDQNConfig",
    "SAC",
    "SACConfig",
    "TD3",
    "TD3Config",
    "TRPO",
    "TRPOConfig",
    "Algorithm",
    "AlgorithmEntry",
    "OffPolicyAlgorithm",
    "OnPolicyAlgorithm",
    "Reinforce",
    "ReinforceConfig",
    "make_algorithm",
]


@dataclass(frozen=True)
class AlgorithmEntry:
    cls: type[Algorithm]
    config_cls: type
    action_spaces: tuple[type, ...]
    """Action-space specs the algorithm handles."""


ALGORITHMS: dict[str, AlgorithmEntry] = {
    "ppo": AlgorithmEntry(PPO, PPOConfig, (BoxSpec, DiscreteSpec)),
    "sac": AlgorithmEntry(SAC, SACConfig, (BoxSpec,)),
    "reinforce": AlgorithmEntry(Reinforce, ReinforceConfig, (BoxSpec, DiscreteSpec)),
    "a2c": AlgorithmEntry(A2C, A2CConfig, (BoxSpec, DiscreteSpec)),
    "trpo": AlgorithmEntry(TRPO, TRPOConfig, (BoxSpec, DiscreteSpec)),
    "ddpg": AlgorithmEntry(DDPG, DDPGConfig, (BoxSpec,)),
    "td3": AlgorithmEntry(TD3, TD3Config, (BoxSpec,)),
    "dqn": AlgorithmEntry(DQN, DQNConfig, (DiscreteSpec,)),
    "c51": AlgorithmEntry(C51, C51Config, (DiscreteSpec,)),
    "qrdqn": AlgorithmEntry(QRDQN, QRDQNConfig, (DiscreteSpec,)),
    "iqn": AlgorithmEntry(IQN, IQNConfig, (DiscreteSpec,)),
}


def make_algorithm(name: str, observation_spec: BoxSpec, action_spec: SpaceSpec, config: Any) -> Algorithm:
    """Build the algorithm ``name`` with its hyperparameter dataclass ``config``."""
    try:
        entry = ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}") from None
    if not isinstance(action_spec, entry.action_spaces):
        kinds = " or ".join("continuous (Box)" if k is BoxSpec else "discrete" for k in entry.action_spaces)
        raise ValueError(f"algorithm {name!r} needs a {kinds} action space")
    if not isinstance(config, entry.config_cls):
        raise TypeError(f"algorithm {name!r} takes a {entry.config_cls.__name__}, got {type(config).__name__}")
    return entry.cls(observation_spec, action_spec, config)  # type: ignore[call-arg]
