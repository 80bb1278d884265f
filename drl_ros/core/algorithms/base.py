"""The learning half of the Policy / Algorithm split.

An :class:`Algorithm` owns everything a policy does not need to act: critics, target networks,
optimizers, temperature. It learns from batches handed to it and never steps an env, so the same
object learns from an embedded loop or from experience that arrives over ROS topics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from drl_ros.core.actors import CategoricalActor, GaussianActor
from drl_ros.core.buffers import ReplayBatch, ReplayBuffer, RolloutBatch
from drl_ros.core.her import HerConfig
from drl_ros.core.networks import mlp
from drl_ros.core.policy import Policy, PolicyStep
from drl_ros.core.spaces import BoxSpec, DiscreteSpec, SpaceSpec
from drl_ros.core.state import flatten_state, unflatten_state


class Algorithm(ABC):
    """Base class of every learning algorithm."""

    name: ClassVar[str]
    on_policy: ClassVar[bool]

    policy: Policy

    def __init__(self) -> None:
        self.updates = 0
        """Gradient updates applied so far."""
        self.skipped_updates = 0
        """Updates skipped because a loss or gradient was not finite."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every trainable or target module, by name (the policy included)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer, by name."""

    def extra_state(self) -> dict[str, Any]:
        """Non-module state to checkpoint (counters, schedules)."""
        return {"updates": self.updates, "skipped_updates": self.skipped_updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.skipped_updates = int(state["skipped_updates"])

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """All learning state as named tensors + JSON: modules, optimizers, counters."""
        tensors: dict[str, torch.Tensor] = {}
        tree = {
            "modules": {name: flatten_state(f"algo.{name}", module.state_dict(), tensors)
                        for name, module in self.modules().items()},
            "optimizers": {name: flatten_state(f"optim.{name}", opt.state_dict(), tensors)
                           for name, opt in self.optimizers().items()},
            "extra": flatten_state("extra", self.extra_state(), tensors),
            "policy_version": self.policy.version,
        }
        return tensors, tree

    def load_state(self, tensors: dict[str, torch.Tensor], tree: dict[str, Any]) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(unflatten_state(tree["modules"][name], tensors))
        for name, opt in self.optimizers().items():
            opt.load_state_dict(unflatten_state(tree["optimizers"][name], tensors))
        self.load_extra_state(unflatten_state(tree["extra"], tensors))
        self.policy.version = int(tree["policy_version"])


class OffPolicyAlgorithm(Algorithm):
    """Learns from a replay buffer. Its config must provide the replay fields used by the loops:
    ``buffer_size``, ``learning_starts``, ``batch_size``, ``gamma``, ``n_step``, ``train_freq``,
    ``gradient_steps``."""

    on_policy: ClassVar[bool] = False
    config: Any

    def collect_action(self, obs: np.ndarray, steps: int) -> PolicyStep:
        """The behaviour action while collecting experience (exploration lives here, e.g. ε-greedy);
        ``steps`` is the number of env steps taken so far."""
        return self.policy.act(obs)

    def learn(self, replay: ReplayBuffer) -> dict[str, float]:
        """One gradient step from the buffer. Algorithms with prioritized replay override this to
        sample by priority and write the new priorities back."""
        return self.update(replay.sample(self.config.batch_size, self.config.gamma, self.config.n_step))

    @abstractmethod
    def update(self, batch: ReplayBatch) -> dict[str, float]:
        """One gradient step on a sampled batch; returns scalar metrics."""


class OnPolicyAlgorithm(Algorithm):
    """Learns from whole rollouts of the current policy. Its config must provide ``n_steps``,
    ``gamma`` and ``gae_lambda``."""

    on_policy: ClassVar[bool] = True
    config: Any
    progress_remaining: float = 1.0

    @abstractmethod
    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """State values ``(B,)`` of raw observations ``(B, obs_dim)`` (zeros if the algorithm has no critic)."""

    @abstractmethod
    def update(self, rollout: RolloutBatch, rng: np.random.Generator | None = None) -> dict[str, float]:
        """Learn from one rollout; returns scalar metrics."""


def all_finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def grads_finite(parameters: list[nn.Parameter]) -> bool:
    """No NaN or infinity in any gradient: one max-abs norm per tensor in a single foreach call
    (NaN and infinity propagate through it; finite values cannot overflow it)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    return not grads or bool(torch.stack(torch._foreach_norm(grads, float("inf"))).isfinite().all())


def fused_adam(params: Any, lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam with its fused kernel: one call per step instead of about 13 small ops per parameter
    tensor, a sizeable share of a small network's update on a CPU."""
    return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)


def polyak_update(params: list[torch.Tensor], target_params: list[torch.Tensor], tau: float) -> None:
    """``target ← (1 − τ) target + τ online``, in place and in one fused call per parameter list."""
    with torch.no_grad():
        torch._foreach_lerp_(target_params, params, tau)


def to_float_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32)


@dataclass
class ContinuousOffPolicyConfig:
    """Hyperparameters shared by the off-policy actor-critics on Box actions (SAC, TD3, DDPG).

    Defaults follow Stable-Baselines3 except ``learning_starts`` (SB3: 100) and, for TD3 and DDPG,
    ``hidden_sizes`` (SB3: [400, 300]).
    """

    learning_rate: float = 1e-3
    """Adam step size of the actor and the critics."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 1000
    """Env steps taken with uniform random actions before learning starts."""
    batch_size: int = 256
    """Transitions per gradient step."""
    tau: float = 0.005
    """Polyak coefficient of the target networks."""
    gamma: float = 0.99
    """Discount factor."""
    train_freq: int = 1
    """Vector-env steps between rounds of gradient steps."""
    gradient_steps: int = 1
    """Gradient steps per round; -1 means one per env step collected in the round."""
    n_step: int = 1
    """Rewards summed per target (1 is plain one-step TD)."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of the actor's and each critic's hidden layers."""
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


@dataclass
class ActorCriticNetworksConfig:
    """Network fields shared by the on-policy algorithms (PPO, A2C, TRPO, REINFORCE): a policy and a
    separate state-value network (critic or baseline) of the same shape."""

    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden widths of the actor and of the separate value network."""
    activation: str = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian actor (Box actions)."""
    normalize_observations: bool = False
    """Normalize observations with running statistics kept in the policy."""


def make_policy_and_value(observation_spec: BoxSpec, action_spec: SpaceSpec,
                          config: ActorCriticNetworksConfig) -> tuple[Policy, nn.Sequential]:
    """A categorical (Discrete) or Gaussian (Box) policy and a state-value network ``V(s)``.

    The value network's orthogonal init with gain 1 on the output follows the PPO reference code.
    """
    kind = CategoricalActor.kind if isinstance(action_spec, DiscreteSpec) else GaussianActor.kind
    policy = Policy.create(observation_spec, action_spec, kind, config.hidden_sizes, config.activation,
                           config.normalize_observations, config.log_std_init)
    value = mlp(observation_spec.dim, config.hidden_sizes, 1, config.activation, output_gain=1.0, orthogonal=True)
    return policy, value
