"""numpy <-> message conversions. The nodes stay thin: they call these, core, and publish.

rclpy keeps ``float32[]`` / ``uint8[]`` fields as :class:`array.array`; filling one from bytes
and reading it with :func:`numpy.frombuffer` avoids a Python-level loop per element, which
matters for experience batches and weights.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from drl_ros.core.policy import Policy


def to_f32_array(values: Any) -> array.array:
    """Any array-like → ``array.array('f')`` for a ``float32[]`` field."""
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def to_f64_list(values: Any) -> list[float]:
    """Any array-like → list of floats for a ``float64[]`` field (Float64MultiArray.data)."""
    return np.asarray(values, dtype=np.float64).ravel().tolist()


def from_array(field: Any, dtype: Any = np.float32) -> np.ndarray:
    """A sequence field → a numpy copy (the message's buffer may be reused by rclpy)."""
    if isinstance(field, array.array):
        return np.frombuffer(field, dtype=dtype).copy() if len(field) else np.zeros(0, dtype=dtype)
    return np.asarray(field, dtype=dtype).copy()


# -- validation -----------------------------------------------------------------------------
def check_vector(values: np.ndarray, expected_dim: int, what: str) -> str | None:
    """Why ``values`` is not a usable flat vector of ``expected_dim`` finite numbers, or None."""
    if values.ndim != 1:
        return f"{what} must be a flat vector, got shape {values.shape}"
    if values.size == 0:
        return f"{what} is empty; expected {expected_dim} values"
    if values.size != expected_dim:
        return f"{what} has {values.size} values; expected {expected_dim}"
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        return f"{what} holds non-finite values at indices {bad[:8].tolist()}"
    return None


# -- policy weights -----------------------------------------------------------------------
@dataclass
class WeightsPayload:
    """What a PolicyWeights message carries, decoded."""

    version: int
    metadata: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def encode_policy(policy: Policy, extra: dict[str, Any] | None = None) -> tuple[int, str, str, bytes]:
    """``(version, metadata_json, sha256, safetensors bytes)`` for a PolicyWeights message."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    blob = safetensors_save(tensors)
    metadata = policy.metadata()
    if extra:
        metadata["extra"] = extra
    return int(policy.version), json.dumps(metadata), hashlib.sha256(blob).hexdigest(), blob


def decode_policy(version: int, metadata_json: str, sha256: str, blob: bytes) -> WeightsPayload:
    """Check and decode PolicyWeights fields (raises ValueError on any mismatch; never unpickles)."""
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise ValueError("policy weights: sha256 of the tensor bytes does not match the message")
    try:
        metadata = json.loads(metadata_json)
    except json.JSONDecodeError as error:
        raise ValueError(f"policy weights: metadata is not JSON ({error})") from error
    if not isinstance(metadata, dict):
        raise ValueError("policy weights: metadata must be a JSON object")
    try:
        tensors = safetensors_load(bytes(blob))
    except Exception as error:  # safetensors raises its own error types on corrupt input
        raise ValueError(f"policy weights: tensors do not decode ({error})") from error
    metadata["version"] = int(version)
    return WeightsPayload(int(version), metadata, tensors)


def policy_from_payload(payload: WeightsPayload) -> Policy:
    policy = Policy.from_metadata(payload.metadata)
    policy.load_state_dict(payload.tensors)
    policy.version = payload.version
    return policy.eval()


# -- experience -----------------------------------------------------------------------------
@dataclass
class Transitions:
    """A block of consecutive transitions of one env stream, numpy side of ExperienceBatch."""

    obs: np.ndarray           # (N, obs_dim) float32
    action: np.ndarray        # (N, act_dim) float32, env units
    reward: np.ndarray        # (N,) float32
    next_obs: np.ndarray      # (N, obs_dim) float32, true next observations
    terminated: np.ndarray    # (N,) bool
    truncated: np.ndarray     # (N,) bool
    is_success: np.ndarray    # (N,) bool
    log_prob: np.ndarray      # (N,) float32
    policy_version: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return int(self.reward.shape[0])


def fill_experience(msg: Any, t: Transitions) -> Any:
    """Write ``t`` into an ExperienceBatch message (row-major flat arrays)."""
    n = len(t)
    msg.count = n
    msg.observation_dim = int(t.obs.shape[1]) if n else 0
    msg.action_dim = int(t.action.shape[1]) if n else 0
    msg.observations = to_f32_array(t.obs)
    msg.actions = to_f32_array(t.action)
    msg.rewards = to_f32_array(t.reward)
    msg.next_observations = to_f32_array(t.next_obs)
    msg.terminated = [bool(x) for x in t.terminated]
    msg.truncated = [bool(x) for x in t.truncated]
    msg.is_success = [bool(x) for x in t.is_success]
    msg.log_probs = to_f32_array(t.log_prob)
    msg.policy_versions = [int(x) for x in t.policy_version]
    return msg


def read_experience(msg: Any) -> Transitions:
    """ExperienceBatch → :class:`Transitions`; ValueError where the sizes do not add up."""
    n, od, ad = int(msg.count), int(msg.observation_dim), int(msg.action_dim)
    obs = from_array(msg.observations)
    act = from_array(msg.actions)
    nxt = from_array(msg.next_observations)
    sizes = {"observations": (obs.size, n * od), "actions": (act.size, n * ad),
             "next_observations": (nxt.size, n * od), "rewards": (len(msg.rewards), n),
             "terminated": (len(msg.terminated), n), "truncated": (len(msg.truncated), n),
             "is_success": (len(msg.is_success), n),
             "log_probs": (len(msg.log_probs), n), "policy_versions": (len(msg.policy_versions), n)}
    wrong = [f"{k} has {got}, expected {want}" for k, (got, want) in sizes.items() if got != want]
    if wrong:
        raise ValueError("experience batch: " + "; ".join(wrong))
    return Transitions(obs.reshape(n, od), act.reshape(n, ad), from_array(msg.rewards),
                       nxt.reshape(n, od), np.asarray(msg.terminated, dtype=bool),
                       np.asarray(msg.truncated, dtype=bool), np.asarray(msg.is_success, dtype=bool),
                       from_array(msg.log_probs),
                       np.asarray(msg.policy_versions, dtype=np.int64))


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)
