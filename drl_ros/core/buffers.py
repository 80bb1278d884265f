"""Experience storage: a replay buffer for off-policy learning and a rollout buffer with GAE(λ).

Both keep ``terminated`` (the MDP ended: no bootstrap) apart from ``truncated`` (a time limit or
an external stop cut the episode: bootstrap from the final observation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class ReplayBatch:
    """A sampled minibatch of (n-step) transitions, as tensors."""

    obs: torch.Tensor
    """``(B, obs_dim)`` observations at the start of each transition."""
    action: torch.Tensor
    """``(B, act_dim)`` float actions (normalized space), or ``(B,)`` int64 for discrete."""
    reward: torch.Tensor
    """``(B,)`` discounted sum of the next ``n`` rewards (one reward when ``n_step=1``)."""
    next_obs: torch.Tensor
    """``(B, obs_dim)`` the observation to bootstrap from, ``n`` steps later or at the episode end."""
    discount: torch.Tensor
    """``(B,)`` ``gamma**k`` for the ``k`` rewards summed, and 0 where the episode terminated, so the
    target is ``reward + discount * V(next_obs)`` in every case."""
    indices: np.ndarray
    """``(B,)`` flat buffer indices, for priority updates."""


class ReplayBuffer:
    """Ring buffer of per-env observation streams that stores every observation once.

    Each env column holds its stream ``o0 a0 r0 | o1 a1 r1 | ... | oT`` in consecutive slots. A
    transition starting at slot ``i`` has its next observation at slot ``i + 1``. When an episode
    ends, its final observation gets a slot of its own with no action (``has_action`` False), and
    the reset observation of the next episode follows it. So next observations are never stored
    twice, truncated episodes keep their true final observation for bootstrapping, and n-step
    returns read forward through one contiguous episode.
    """

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...], num_envs: int = 1,
                 discrete: bool = False, seed: int | None = None) -> None:
        if capacity < 2 * num_envs:
            raise ValueError(f"capacity {capacity} is too small for {num_envs} envs")
        self.num_envs = num_envs
        self.slots = capacity // num_envs
        self.obs = np.zeros((self.slots, num_envs, obs_dim), dtype=np.float32)
        self.action = np.zeros((self.slots, num_envs, *action_shape), dtype=np.int64 if discrete else np.float32)
        self.reward = np.zeros((self.slots, num_envs), dtype=np.float32)
        self.terminated = np.zeros((self.slots, num_envs), dtype=bool)
        self.truncated = np.zeros((self.slots, num_envs), dtype=bool)
        self.has_action = np.zeros((self.slots, num_envs), dtype=bool)
        self.head = np.zeros(num_envs, dtype=np.int64)
        """Per env: the slot the next observation goes to."""
        self.open = np.zeros(num_envs, dtype=bool)
        """Per env: the observation at ``head - 1`` awaits its action (an episode is in progress)."""
        self.filled = np.zeros(num_envs, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        # Kept alongside has_action so len() is O(1): samplers call it on every gradient step.
        self._transitions = 0

    def __len__(self) -> int:
        """Number of complete transitions stored."""
        return self._transitions

    def _write_obs(self, env: int, obs: np.ndarray) -> None:
        slot = self.head[env]
        self.obs[slot, env] = obs
        # Overwriting the oldest slot destroys the oldest transition that started there.
        if self.has_action[slot, env]:
            self.has_action[slot, env] = False
            self._transitions -= 1
        self.head[env] = (slot + 1) % self.slots
        self.filled[env] = min(self.filled[env] + 1, self.slots)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Add one vector step: every argument has the env batch first, ``(num_envs, ...)``.

        ``next_obs`` must be the true next observation, i.e. the final observation where the
        episode ended (not the reset observation the vector env returns in its place).
        """
        for env in range(self.num_envs):
            if not self.open[env]:
                self._write_obs(env, obs[env])
            slot = (self.head[env] - 1) % self.slots
            self.action[slot, env] = action[env]
            self.reward[slot, env] = reward[env]
            self.terminated[slot, env] = terminated[env]
            self.truncated[slot, env] = truncated[env]
            self._write_obs(env, next_obs[env])
            self.has_action[slot, env] = True
            self._transitions += 1
            # After an episode end the next add starts a new stream segment with the reset obs.
            self.open[env] = not (terminated[env] or truncated[env])

    def _sample_starts(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        slots = np.empty(0, dtype=np.int64)
        envs = np.empty(0, dtype=np.int64)
        # Rejection sampling: episode-final slots are a small fraction, so few rounds are needed.
        while slots.size < batch_size:
            need = batch_size - slots.size
            env = self.rng.integers(0, self.num_envs, size=2 * need)
            slot = (self.rng.random(2 * need) * self.filled[env]).astype(np.int64)
            ok = self.has_action[slot, env]
            slots = np.concatenate([slots, slot[ok][:need]])
            envs = np.concatenate([envs, env[ok][:need]])
        return slots, envs

    def sample(self, batch_size: int, gamma: float = 0.99, n_step: int = 1) -> ReplayBatch:
        """Sample transitions uniformly; with ``n_step > 1`` rewards are summed over up to ``n``
        steps of the same episode."""
        slots, envs = self._sample_starts(batch_size)
        return self.gather(slots, envs, gamma, n_step)

    def gather(self, slots: np.ndarray, envs: np.ndarray, gamma: float, n_step: int) -> ReplayBatch:
        """Build n-step transitions starting at the given ``(slot, env)`` pairs."""
        batch = slots.shape[0]
        ret = np.zeros(batch, dtype=np.float64)
        discount = np.ones(batch, dtype=np.float64)
        alive = np.ones(batch, dtype=bool)  # still accumulating rewards
        cursor = slots.copy()
        for _ in range(n_step):
            ret += np.where(alive, discount * self.reward[cursor, envs], 0.0)
            term = self.terminated[cursor, envs]
            nxt = (cursor + 1) % self.slots
            discount = np.where(alive, discount * gamma, discount)
            discount = np.where(alive & term, 0.0, discount)
            # Stop at an episode end, or where the next observation has no action yet (newest data).
            stop = term | ~self.has_action[nxt, envs]
            cursor = np.where(alive, nxt, cursor)
            alive &= ~stop
        return ReplayBatch(
            obs=torch.from_numpy(self.obs[slots, envs]),
            action=torch.from_numpy(self.action[slots, envs]),
            reward=torch.from_numpy(ret.astype(np.float32)),
            next_obs=torch.from_numpy(self.obs[cursor, envs]),
            discount=torch.from_numpy(discount.astype(np.float32)),
            indices=slots * self.num_envs + envs,
        )

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (for the tensor file) and small JSON state, so resume restores the buffer exactly."""
        arrays = {"obs": self.obs, "action": self.action, "reward": self.reward, "terminated": self.terminated,
                  "truncated": self.truncated, "has_action": self.has_action, "head": self.head,
                  "open": self.open, "filled": self.filled}
        return arrays, {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        for name in ("obs", "action", "reward", "terminated", "truncated", "has_action", "head", "open", "filled"):
            current = getattr(self, name)
            value = np.asarray(arrays[name])
            if value.shape != current.shape:
                raise ValueError(f"replay buffer field {name!r} has shape {value.shape}, expected {current.shape}")
            current[...] = value
        self._transitions = int(self.has_action.sum())
        self.rng.bit_generator.state = state["rng"]


def compute_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
                truncated: np.ndarray, gamma: float, gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation (Schulman et al. 2016) over a ``(T, E)`` rollout.

    ``next_values[t]`` is V of the true next state of step ``t``: the next row's value inside an
    episode, V(final observation) where the episode was truncated, V(last observation) at the end
    of the rollout; it is ignored where the episode terminated. The λ-trace is cut at every
    episode end, terminated or truncated.

    Returns ``(advantages, returns)`` with ``returns = advantages + values``, both ``(T, E)``.
    """
    steps = rewards.shape[0]
    advantages = np.zeros_like(rewards, dtype=np.float32)
    last = np.zeros(rewards.shape[1:], dtype=np.float32)
    not_terminated = 1.0 - terminated.astype(np.float32)
    not_done = 1.0 - (terminated | truncated).astype(np.float32)
    for t in reversed(range(steps)):
        delta = rewards[t] + gamma * not_terminated[t] * next_values[t] - values[t]
        last = delta + gamma * gae_lambda * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values


@dataclass
class RolloutBatch:
    """A flattened on-policy rollout, ready for minibatch epochs."""

    obs: torch.Tensor
    """``(N, obs_dim)``"""
    action: torch.Tensor
    """``(N, act_dim)`` or ``(N,)`` for discrete"""
    log_prob: torch.Tensor
    """``(N,)`` behaviour log-probabilities"""
    advantage: torch.Tensor
    """``(N,)``"""
    returns: torch.Tensor
    """``(N,)`` λ-returns, the value targets"""
    value: torch.Tensor
    """``(N,)`` values at collection time (for value clipping)"""


class RolloutBuffer:
    """Fixed-length ``(n_steps, num_envs)`` on-policy storage."""

    def __init__(self, n_steps: int, num_envs: int, obs_dim: int, action_shape: tuple[int, ...],
                 discrete: bool = False) -> None:
        self.n_steps = n_steps
        self.num_envs = num_envs
        self.obs = np.zeros((n_steps, num_envs, obs_dim), dtype=np.float32)
        self.action = np.zeros((n_steps, num_envs, *action_shape), dtype=np.int64 if discrete else np.float32)
        self.log_prob = np.zeros((n_steps, num_envs), dtype=np.float32)
        self.reward = np.zeros((n_steps, num_envs), dtype=np.float32)
        self.terminated = np.zeros((n_steps, num_envs), dtype=bool)
        self.truncated = np.zeros((n_steps, num_envs), dtype=bool)
        self.final_obs = np.zeros((n_steps, num_envs, obs_dim), dtype=np.float32)
        """Final observation where an episode was truncated at step t (zeros elsewhere)."""
        self.step = 0

    @property
    def full(self) -> bool:
        return self.step >= self.n_steps

    def add(self, obs: np.ndarray, action: np.ndarray, log_prob: np.ndarray, reward: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray, final_obs: np.ndarray | None) -> None:
        t = self.step
        if t >= self.n_steps:
            raise IndexError("rollout buffer is full; call reset() after the update")
        self.obs[t] = obs
        self.action[t] = action
        self.log_prob[t] = log_prob
        self.reward[t] = reward
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        if final_obs is not None:
            self.final_obs[t] = final_obs
        self.step += 1

    def reset(self) -> None:
        self.step = 0
        self.final_obs[:] = 0.0
