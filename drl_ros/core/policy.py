"""The acting half of the Policy / Algorithm split: a policy maps observations to actions and
nothing else. It owns observation normalization and action scaling, so a saved policy acts the
same on a robot computer as in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drl_ros.core.actors import Actor, build_actor
from drl_ros.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from drl_ros.core.normalization import ObservationNormalizer
from drl_ros.core.spaces import BoxSpec, DiscreteSpec, SpaceSpec, space_from_dict

POLICY_FORMAT = "drl_ros.policy"


@dataclass
class PolicyStep:
    """What one call to :meth:`Policy.act` returns, batch-first."""

    env_action: np.ndarray
    """Action in the env's units and bounds: ``(B, act_dim)`` float32, or ``(B,)`` int64 for discrete."""
    action: np.ndarray
    """Action in the policy's normalized space, the one learners store: same shape as ``env_action``."""
    log_prob: np.ndarray
    """Log-probability of ``action`` under the behaviour policy, ``(B,)`` float32."""


class Policy(nn.Module):
    """Observation normalizer + actor + action scaling.

    Box action spaces are learned in ``[-1, 1]^act_dim``; :meth:`scale_action` maps that onto the
    env's ``[low, high]``. Unbounded Box dimensions pass through unscaled.
    """

    def __init__(self, observation_spec: BoxSpec, action_spec: SpaceSpec, actor: Actor,
                 architecture: dict[str, Any], normalize_observations: bool = False) -> None:
        super().__init__()
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.actor = actor
        self.architecture = dict(architecture)
        self.normalizer = ObservationNormalizer(observation_spec.dim) if normalize_observations else None
        self.version = 0
        if isinstance(action_spec, BoxSpec):
            low = np.asarray(action_spec.low, dtype=np.float32)
            high = np.asarray(action_spec.high, dtype=np.float32)
            finite = np.isfinite(low) & np.isfinite(high)
            self._scale = np.where(finite, (high - low) / 2.0, 1.0).astype(np.float32)
            self._offset = np.where(finite, (high + low) / 2.0, 0.0).astype(np.float32)

    @classmethod
    def create(cls, observation_spec: BoxSpec, action_spec: SpaceSpec, actor_kind: str,
               hidden_sizes: list[int], activation: str, normalize_observations: bool = False,
               log_std_init: float = 0.0, actor_kwargs: dict[str, Any] | None = None) -> Policy:
        act_dim = action_spec.n if isinstance(action_spec, DiscreteSpec) else action_spec.dim
        architecture = {"actor": actor_kind, "hidden_sizes": list(hidden_sizes), "activation": activation,
                        "log_std_init": log_std_init}
        if actor_kwargs:
            architecture["actor_kwargs"] = dict(actor_kwargs)
        actor = build_actor(actor_kind, observation_spec.dim, act_dim, hidden_sizes, activation, log_std_init,
                            actor_kwargs)
        return cls(observation_spec, action_spec, actor, architecture, normalize_observations)

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_spec, DiscreteSpec)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.normalizer is None else self.normalizer(obs)

    def scale_action(self, action: np.ndarray) -> np.ndarray:
        """Normalized action ``(B, act_dim)`` → env action: clip to ``[-1, 1]``, then map to the bounds."""
        if self.discrete:
            return action.astype(np.int64)
        return (np.clip(action, -1.0, 1.0) * self._scale + self._offset).astype(np.float32)

    def unscale_action(self, env_action: np.ndarray) -> np.ndarray:
        """Env action → normalized action (the inverse of :meth:`scale_action` inside the bounds)."""
        if self.discrete:
            return env_action.astype(np.int64)
        return ((env_action - self._offset) / self._scale).astype(np.float32)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> PolicyStep:
        """Act on a batch ``(B, obs_dim)`` or a single observation ``(obs_dim,)`` (returned with B=1)."""
        # from_numpy shares the caller's float32 buffer; this runs on every env step.
        obs_arr = obs if isinstance(obs, np.ndarray) and obs.dtype == np.float32 else np.asarray(obs, np.float32)
        obs_t = torch.from_numpy(obs_arr).reshape(-1, self.observation_spec.dim)
        action_t, log_prob_t = self.actor.sample(self.normalize(obs_t), deterministic)
        action = action_t.numpy()
        return PolicyStep(self.scale_action(action), action, log_prob_t.numpy())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic normalized action for a raw observation batch (the exported graph)."""
        return self.actor.deterministic_action(self.normalize(obs))

    # -- files --------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {"format": POLICY_FORMAT, "observation_space": self.observation_spec.to_dict(),
                "action_space": self.action_spec.to_dict(), "architecture": self.architecture,
                "normalize_observations": self.normalizer is not None, "version": self.version}

    def save(self, path_stem: str | Path, extra_metadata: dict[str, Any] | None = None) -> Path:
        """Write ``<stem>.json`` + tensors atomically (safetensors, never pickle)."""
        metadata = self.metadata()
        if extra_metadata:
            metadata["extra"] = extra_metadata
        tensors = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return save_checkpoint(Path(path_stem), tensors, metadata)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Policy:
        if metadata.get("format") != POLICY_FORMAT:
            raise ValueError(f"not a drl_ros policy file (format {metadata.get('format')!r})")
        obs_spec = space_from_dict(metadata["observation_space"])
        if not isinstance(obs_spec, BoxSpec):
            raise ValueError("policy observation spaces must be Box spaces")
        arch = metadata["architecture"]
        policy = cls.create(obs_spec, space_from_dict(metadata["action_space"]), arch["actor"],
                            arch["hidden_sizes"], arch["activation"], metadata["normalize_observations"],
                            arch.get("log_std_init", 0.0), arch.get("actor_kwargs"))
        policy.version = int(metadata.get("version", 0))
        return policy

    @classmethod
    def load(cls, path_stem: str | Path) -> Policy:
        """Load a policy file; a pickled, tampered or inconsistent file raises CheckpointError
        (a ValueError) naming the file, and nothing in it is executed."""
        tensors, metadata = load_checkpoint(Path(path_stem))
        try:
            policy = cls.from_metadata(metadata)
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise CheckpointError(f"{path_stem}: not a valid drl_ros policy file: {detail}") from exc
        try:
            policy.load_state_dict(tensors)
        except RuntimeError as exc:  # missing, extra or wrongly shaped tensors
            raise CheckpointError(f"{path_stem}: the tensors do not match the architecture in the policy "
                                  f"file: {exc}") from exc
        return policy.eval()
