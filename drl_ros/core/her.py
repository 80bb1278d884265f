"""Hindsight Experience Replay (Andrychowicz et al. 2017).

In a goal-conditioned task with a sparse reward almost every episode fails, so almost every
stored reward says nothing. HER replays a transition a second time as if the goal had been a goal
the robot did reach later in the same episode: the observation's desired goal is replaced, the
reward is recomputed by the env's own ``compute_reward``, and the failure becomes a lesson in how
to reach that point.

drl_ros policies read flat Box observations, so a goal-conditioned env declares where its goals
sit in that vector with a :class:`GoalLayout`: the desired goal, the achieved goal and any
goal-relative terms (``desired − achieved``) that must follow a substituted goal. Relabelling
happens when a batch is sampled (SB3's "online" sampling), on a :class:`HerReplayBuffer` that
stores every episode once, exactly as the plain :class:`~drl_ros.core.buffers.ReplayBuffer` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from drl_ros.core.buffers import ReplayBatch, ReplayBuffer

RewardFn = Callable[[np.ndarray, np.ndarray, Any], np.ndarray]
"""``compute_reward(achieved (B, g), desired (B, g), info) -> (B,)``, vectorized over the batch."""


@dataclass
class HerConfig:
    """Hindsight relabelling of sampled transitions."""

    strategy: Literal["future", "final"] = "future"
    """Where substitute goals come from: ``future`` a goal achieved at a random later step of the same
    episode, ``final`` the goal achieved at the episode's last step."""
    k: int = 4
    """Relabelled transitions per original one: a fraction ``k / (k + 1)`` of every batch gets a
    substitute goal (the paper's k)."""

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"her.k must be non-negative, got {self.k}")

    @property
    def relabel_fraction(self) -> float:
        return self.k / (self.k + 1.0)


@dataclass(frozen=True)
class GoalLayout:
    """Where the goals sit in a flat observation vector."""

    desired: slice
    """The desired goal, ``g`` values."""
    achieved: slice
    """The goal the robot achieves in this state (e.g. its end-effector position), ``g`` values."""
    relative: tuple[slice, ...] = ()
    """Slices holding ``desired − achieved``; relabelling recomputes them from the new goal."""

    def __post_init__(self) -> None:
        width = self.desired.stop - self.desired.start
        for part in (self.achieved, *self.relative):
            if part.stop - part.start != width or (part.step or 1) != 1:
                raise ValueError("goal layout slices must all be contiguous and of the goal's width")

    def with_goal(self, obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Copy of ``obs`` ``(B, obs_dim)`` with desired goal ``goal`` ``(B, g)`` and the relative terms
        following it."""
        out = obs.copy()
        out[:, self.desired] = goal
        for part in self.relative:
            out[:, part] = goal - obs[:, self.achieved]
        return out


def sample_goal_slots(starts: np.ndarray, ends: np.ndarray, capacity: int, strategy: str,
                      rng: np.random.Generator) -> np.ndarray:
    """Slots whose achieved goal replaces the desired goal of transitions starting at ``starts``.

    ``ends`` is the slot of each episode's final observation. ``future`` draws uniformly among the
    observations after the transition's start up to and including the final one (so the next
    observation itself is a candidate); ``final`` takes the final one. Slots wrap around the ring.
    """
    if strategy == "final":
        return ends.copy()
    later = (ends - starts) % capacity  # observations after the start, >= 1
    offset = 1 + (rng.random(starts.shape[0]) * later).astype(np.int64)
    return (starts + offset) % capacity


class HerReplayBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` that relabels a fraction of each sampled batch with hindsight goals.

    Only transitions of finished episodes are relabelled (the goals of an episode in progress are
    not all known yet). Relabelled rewards come from ``compute_reward(achieved, desired, None)`` of
    the next observation; the ``terminated`` flags stay as stored, so the env must not end episodes
    on success (drl_ros goal envs do not). One-step targets only: an n-step sum would need every
    intermediate reward recomputed.
    """

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...], layout: GoalLayout,
                 compute_reward: RewardFn, config: HerConfig, num_envs: int = 1, discrete: bool = False,
                 seed: int | None = None) -> None:
        super().__init__(capacity, obs_dim, action_shape, num_envs, discrete, seed)
        if max(layout.desired.stop, layout.achieved.stop, *(p.stop for p in layout.relative)) > obs_dim:
            raise ValueError(f"goal layout {layout} does not fit observations of size {obs_dim}")
        self.layout = layout
        self.compute_reward = compute_reward
        self.config = config
        self.episode_end = np.full((self.slots, num_envs), -1, dtype=np.int64)
        """Slot of the final observation of the episode each slot belongs to; -1 while unknown."""
        self.episode_start = np.zeros(num_envs, dtype=np.int64)
        """Per env: the first slot of the episode in progress."""

    def _write_obs(self, env: int, obs: np.ndarray) -> None:
        self.episode_end[self.head[env], env] = -1  # the slot's previous episode is gone
        super()._write_obs(env, obs)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray) -> None:
        starting = ~self.open
        self.episode_start[starting] = self.head[starting]
        super().add(obs, action, reward, next_obs, terminated, truncated)
        for env in np.flatnonzero(np.asarray(terminated) | np.asarray(truncated)):
            end = (self.head[env] - 1) % self.slots
            length = (end - self.episode_start[env]) % self.slots + 1
            self.episode_end[(self.episode_start[env] + np.arange(length)) % self.slots, env] = end

    def sample(self, batch_size: int, gamma: float = 0.99, n_step: int = 1) -> ReplayBatch:
        if n_step != 1:
            raise ValueError("hindsight relabelling needs one-step targets (n_step=1)")
        slots, envs = self._sample_starts(batch_size)
        batch = self.gather(slots, envs, gamma, 1)
        ends = self.episode_end[slots, envs]
        relabel = (self.rng.random(batch_size) < self.config.relabel_fraction) & (ends >= 0)
        if relabel.any():
            self.relabel(batch, relabel, slots[relabel], envs[relabel], ends[relabel])
        return batch

    def relabel(self, batch: ReplayBatch, mask: np.ndarray, slots: np.ndarray, envs: np.ndarray,
                ends: np.ndarray) -> None:
        """Give the transitions ``batch[mask]`` (starting at ``slots``, ``envs``) hindsight goals, in place."""
        goal_slots = sample_goal_slots(slots, ends, self.slots, self.config.strategy, self.rng)
        goals = self.obs[goal_slots, envs][:, self.layout.achieved]
        obs, next_obs, reward = batch.obs.numpy(), batch.next_obs.numpy(), batch.reward.numpy()
        obs[mask] = self.layout.with_goal(obs[mask], goals)
        next_obs[mask] = self.layout.with_goal(next_obs[mask], goals)
        reward[mask] = np.asarray(self.compute_reward(next_obs[mask][:, self.layout.achieved], goals, None),
                                  dtype=np.float32).reshape(-1)

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, state = super().state_dict()
        return {**arrays, "episode_end": self.episode_end, "episode_start": self.episode_start}, state

    def load_state_dict(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        super().load_state_dict({k: v for k, v in arrays.items() if not k.startswith("episode_")}, state)
        self.episode_end[...] = np.asarray(arrays["episode_end"])
        self.episode_start[...] = np.asarray(arrays["episode_start"])
