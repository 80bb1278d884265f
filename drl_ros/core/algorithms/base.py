"""The learning half of the Policy / Algorithm split.

An :class:`Algorithm` owns everything a policy does not need to act: critics, target networks,
optimizers, temperature. It learns from batches handed to it and never steps an env, so the same
object learns from an embedded loop or from experience that arrives over ROS topics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from drl_ros.core.buffers import ReplayBatch, ReplayBuffer, RolloutBatch
from drl_ros.core.policy import Policy, PolicyStep
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
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in parameters)


def polyak_update(params: list[torch.Tensor], target_params: list[torch.Tensor], tau: float) -> None:
    """``target ← (1 − τ) target + τ online``, in place and in one fused call per parameter list."""
    with torch.no_grad():
        torch._foreach_lerp_(target_params, params, tau)


def to_float_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32)
