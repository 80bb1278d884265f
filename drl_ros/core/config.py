"""Configuration of a training run: one dataclass tree, loaded from YAML under ``config/``.

Every field carries a docstring; the same dataclasses feed ROS parameter declarations later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drl_ros.core.algorithms import ALGORITHMS
from drl_ros.core.algorithms.a2c import A2CConfig
from drl_ros.core.algorithms.ddpg import DDPGConfig
from drl_ros.core.algorithms.distributional import C51Config, IQNConfig, QRDQNConfig
from drl_ros.core.algorithms.dqn import DQNConfig
from drl_ros.core.algorithms.ppo import PPOConfig
from drl_ros.core.algorithms.reinforce import ReinforceConfig
from drl_ros.core.algorithms.sac import SACConfig
from drl_ros.core.algorithms.td3 import TD3Config
from drl_ros.core.algorithms.trpo import TRPOConfig
from drl_ros.core.config_loading import load_config


@dataclass
class EnvConfig:
    """Which environment to train on and how many copies to step together."""

    id: str = "drl_ros/KukaReach-v0"
    """Gymnasium id (drl_ros registers its robots under ``drl_ros/``)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments passed to ``gymnasium.make``."""
    num_envs: int = 1
    """Env copies stepped as one vector env."""
    vectorization: Literal["sync", "async"] = "sync"
    """``sync`` steps the copies in this process; ``async`` gives each its own process."""

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {self.num_envs}")


@dataclass
class EvalConfig:
    """Periodic evaluation on a separate env copy."""

    every_steps: int = 5000
    """Env steps between evaluations; 0 evaluates only at the end."""
    episodes: int = 20
    """Episodes per evaluation."""
    deterministic: bool = True
    """Evaluate the mean / mode action rather than samples."""
    final_episodes: int | None = None
    """Episodes of the evaluation at the end of the run; None means ``episodes``."""

    def __post_init__(self) -> None:
        if self.every_steps < 0 or self.episodes < 1:
            raise ValueError("every_steps must be >= 0 and episodes >= 1")
        if self.final_episodes is not None and self.final_episodes < 1:
            raise ValueError("final_episodes must be >= 1")


@dataclass
class StopConfig:
    """Early stop once an evaluation reaches a target (both None: run the whole budget)."""

    success_rate: float | None = None
    """Stop when evaluation success rate is at least this (0..1)."""
    mean_return: float | None = None
    """Stop when evaluation mean return is at least this."""


@dataclass
class TrainConfig:
    """A whole training run."""

    algorithm: str = "sac"
    """Learning algorithm: a name from ``drl_ros.core.algorithms.ALGORITHMS``; its section below
    holds the hyperparameters."""
    total_steps: int = 100_000
    """Budget in env steps, summed over the vector env's copies."""
    seed: int = 0
    """Seeds envs, networks and sampling; the same seed gives the same run on CPU."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Environment."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters (used when ``algorithm`` is ppo)."""
    sac: SACConfig = field(default_factory=SACConfig)
    """SAC hyperparameters (used when ``algorithm`` is sac)."""
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    """REINFORCE hyperparameters (used when ``algorithm`` is reinforce)."""
    a2c: A2CConfig = field(default_factory=A2CConfig)
    """A2C hyperparameters (used when ``algorithm`` is a2c)."""
    trpo: TRPOConfig = field(default_factory=TRPOConfig)
    """TRPO hyperparameters (used when ``algorithm`` is trpo)."""
    ddpg: DDPGConfig = field(default_factory=DDPGConfig)
    """DDPG hyperparameters (used when ``algorithm`` is ddpg)."""
    td3: TD3Config = field(default_factory=TD3Config)
    """TD3 hyperparameters (used when ``algorithm`` is td3)."""
    dqn: DQNConfig = field(default_factory=DQNConfig)
    """DQN hyperparameters, with its double / dueling / prioritized / n-step options (used when
    ``algorithm`` is dqn)."""
    c51: C51Config = field(default_factory=C51Config)
    """C51 hyperparameters (used when ``algorithm`` is c51)."""
    qrdqn: QRDQNConfig = field(default_factory=QRDQNConfig)
    """QR-DQN hyperparameters (used when ``algorithm`` is qrdqn)."""
    iqn: IQNConfig = field(default_factory=IQNConfig)
    """IQN hyperparameters (used when ``algorithm`` is iqn)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation schedule."""
    stop: StopConfig = field(default_factory=StopConfig)
    """Early-stop targets."""
    checkpoint_every_steps: int = 10_000
    """Env steps between checkpoints (a final one is always written)."""
    run_dir: str | None = None
    """Where the run's files go; None means ``runs/<config name>-<timestamp>``."""
    torch_threads: int = 1
    """Intra-op threads for torch; small networks run fastest on one."""
    log_every_steps: int = 1000
    """Env steps between scalar logs."""

    def algorithm_config(self) -> Any:
        """The hyperparameter section of the chosen algorithm."""
        return getattr(self, self.algorithm)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: unknown algorithm {self.algorithm!r}; choose one of {sorted(ALGORITHMS)}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {self.total_steps}")
        if self.checkpoint_every_steps < 0:
            raise ValueError("checkpoint_every_steps must be >= 0")
        if self.torch_threads < 1:
            raise ValueError("torch_threads must be at least 1")


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a run configuration; errors name the file and the dotted field."""
    return load_config(TrainConfig, Path(path), overrides=overrides)
