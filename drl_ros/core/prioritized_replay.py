"""Prioritized experience replay (Schaul et al. 2016, "Prioritized Experience Replay").

Transitions are sampled with probability ``P(i) = p_i^α / Σ_k p_k^α`` where ``p_i = |δ_i| + ε`` is
the last TD error seen for transition ``i``; the bias this introduces is corrected with
importance-sampling weights ``w_i = (N · P(i))^−β``, normalized by their maximum, with ``β``
annealed to 1 over training. New transitions get the largest priority seen so far, so each is
replayed at least once soon after it arrives.

The priorities live in a :class:`SumTree` over the flat indices ``slot · num_envs + env`` of a
:class:`~drl_ros.core.buffers.ReplayBuffer`; the buffer itself is unchanged and builds the
(n-step) transitions from the chosen starts with :meth:`ReplayBuffer.gather`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from drl_ros.core.buffers import ReplayBatch, ReplayBuffer


class SumTree:
    """A complete binary tree whose leaves hold non-negative priorities and whose inner nodes hold
    the sum of their children, so the total, one update and one proportional draw all cost
    ``O(log n)``. Batched: every method takes arrays of leaves.

    Node 1 is the root; node ``k`` has children ``2k`` and ``2k + 1``; leaf ``i`` is node
    ``size + i`` with ``size`` the capacity rounded up to a power of two.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a sum tree needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.depth = max(0, (capacity - 1).bit_length())
        self.size = 1 << self.depth
        # float64: the root is a running sum of up to millions of leaves, refreshed from its
        # children on every update, so it never accumulates drift.
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all leaves."""
        return float(self.nodes[1]) if self.size > 1 else float(self.nodes[self.size])

    @property
    def leaves(self) -> np.ndarray:
        """``(capacity,)`` view of the leaf priorities."""
        return self.nodes[self.size:self.size + self.capacity]

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self.nodes[self.size + np.asarray(indices, dtype=np.int64)]

    def set(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaves ``indices`` to ``priorities`` (where an index repeats, the last value wins)."""
        idx = np.asarray(indices, dtype=np.int64)
        values = np.broadcast_to(np.asarray(priorities, dtype=np.float64), idx.shape)
        if idx.size and (idx.min() < 0 or idx.max() >= self.capacity):
            raise IndexError(f"sum tree index out of range [0, {self.capacity})")
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise ValueError("priorities must be finite and non-negative")
        node = idx + self.size
        self.nodes[node] = values
        # Recompute each ancestor from its two children: repeated parents just recompute the same sum.
        for _ in range(self.depth):
            node //= 2
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def rebuild(self) -> None:
        """Recompute every inner node from the leaves (after writing ``leaves`` in bulk)."""
        for level in range(self.depth - 1, -1, -1):
            lo, hi = 1 << level, 2 << level
            self.nodes[lo:hi] = self.nodes[2 * lo:2 * hi:2] + self.nodes[2 * lo + 1:2 * hi:2]

    def find_prefix_sum(self, values: np.ndarray) -> np.ndarray:
        """For each ``v`` in ``[0, total)``: the leaf ``i`` with ``Σ_{k<i} p_k ≤ v < Σ_{k≤i} p_k``.

        Drawing ``v`` uniformly in ``[0, total)`` thus picks leaf ``i`` with probability
        ``p_i / total``; leaves of priority 0 are never picked.
        """
        v = np.asarray(values, dtype=np.float64).copy()
        node = np.ones(v.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.nodes[left]
            go_right = v >= left_sum
            v = np.where(go_right, v - left_sum, v)
            node = np.where(go_right, left + 1, left)
        leaf = node - self.size
        # Rounding can push a draw just past the last positive leaf of a subtree onto a zero leaf
        # (or past the capacity); move such draws to the nearest positive leaf on their left.
        bad = (leaf >= self.capacity) | (self.nodes[self.size + np.minimum(leaf, self.capacity - 1)] <= 0.0)
        if bad.any():
            positive = np.flatnonzero(self.leaves > 0.0)
            if positive.size == 0:
                raise ValueError("cannot sample from a sum tree whose priorities are all zero")
            at = np.searchsorted(positive, leaf[bad], side="right") - 1
            leaf[bad] = positive[np.maximum(at, 0)]
        return leaf


class PrioritizedSampler:
    """Proportional prioritized sampling over a :class:`ReplayBuffer`.

    It follows the buffer without changing it: :meth:`sync` gives every transition added since the
    last call the maximum priority and every slot that no longer starts a transition priority 0.
    The learner calls :meth:`sample`, learns, then :meth:`update_priorities` with the new TD errors.
    """

    def __init__(self, alpha: float = 0.6, epsilon: float = 1e-6) -> None:
        if alpha < 0.0 or epsilon <= 0.0:
            raise ValueError("alpha must be >= 0 and epsilon > 0")
        self.alpha = alpha
        self.epsilon = epsilon
        self.max_priority = 1.0
        """Largest ``|δ| + ε`` seen so far (before the exponent α), given to new transitions."""
        self.tree: SumTree | None = None
        self._seen_head: np.ndarray | None = None
        self._pending_state: dict[str, Any] | None = None

    def sync(self, replay: ReplayBuffer) -> None:
        """Bring the priorities up to date with what the buffer holds now.

        Only the slots written since the previous call are visited (from each env's old head − 1,
        whose observation may have received its action since, to its new head − 1), so it must be
        called at least once per ``capacity / num_envs`` vector steps; the trainer calls it before
        every gradient step.
        """
        num_envs, slots = replay.num_envs, replay.slots
        if self.tree is None or self.tree.capacity != slots * num_envs:
            self.tree = SumTree(slots * num_envs)
            if self._pending_state is not None:
                self._restore(self._pending_state)
                self._pending_state = None
            else:
                self._seen_head = None
        tree = self.tree
        new_head = replay.head.copy()
        if self._seen_head is None:
            tree.leaves[:] = np.where(replay.has_action.reshape(-1), self.max_priority ** self.alpha, 0.0)
            tree.rebuild()
        else:
            written = (new_head - self._seen_head) % slots
            for env in np.flatnonzero(written):
                slot = (self._seen_head[env] - 1 + np.arange(written[env] + 1)) % slots
                valid = replay.has_action[slot, env]
                tree.set(slot * num_envs + env, np.where(valid, self.max_priority ** self.alpha, 0.0))
        self._seen_head = new_head

    def beta_weights(self, indices: np.ndarray, beta: float) -> np.ndarray:
        """Importance-sampling weights ``(B,)``: ``w_i = (N · P(i))^−β / max_j w_j``.

        The maximum is taken over the batch (as Dopamine and Rainbow implementations do), so
        ``N`` cancels and weights only ever scale the loss down.
        """
        assert self.tree is not None
        probs = self.tree.get(indices) / self.tree.total
        weights = (probs / probs.min()) ** (-beta)
        return weights.astype(np.float32)

    def sample(self, replay: ReplayBuffer, batch_size: int, gamma: float, n_step: int,
               beta: float) -> tuple[ReplayBatch, torch.Tensor]:
        """Sync, then draw ``batch_size`` starts in proportion to priority (stratified: one draw in
        each of ``batch_size`` equal segments of the total, as in the paper's appendix B.2.1).
        Returns the n-step batch and its importance-sampling weights ``(B,)``."""
        self.sync(replay)
        assert self.tree is not None
        total = self.tree.total
        if total <= 0.0:
            raise ValueError("cannot sample from an empty replay buffer")
        # The buffer's generator, so that a resumed run continues the same random stream.
        draws = (np.arange(batch_size) + replay.rng.random(batch_size)) * (total / batch_size)
        leaves = self.tree.find_prefix_sum(draws)
        slots, envs = np.divmod(leaves, replay.num_envs)
        batch = replay.gather(slots, envs, gamma, n_step)
        return batch, torch.from_numpy(self.beta_weights(leaves, beta))

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set ``p_i = |δ_i| + ε`` for the sampled transitions (stored as ``p_i^α``)."""
        assert self.tree is not None
        priority = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.epsilon
        self.max_priority = max(self.max_priority, float(priority.max()))
        self.tree.set(indices, priority ** self.alpha)

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.tree is None:
            return {"max_priority": self.max_priority}
        return {"max_priority": self.max_priority, "leaves": self.tree.leaves.copy(),
                "seen_head": None if self._seen_head is None else self._seen_head.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore; the tree is rebuilt at the next :meth:`sync` (its size comes from the buffer)."""
        self.max_priority = float(state["max_priority"])
        self.tree = None
        self._pending_state = state if "leaves" in state else None

    def _restore(self, state: dict[str, Any]) -> None:
        assert self.tree is not None
        leaves = np.asarray(state["leaves"], dtype=np.float64)
        if leaves.shape != (self.tree.capacity,):
            raise ValueError(f"prioritized replay state has {leaves.shape[0]} priorities, "
                             f"the buffer {self.tree.capacity}")
        self.tree.leaves[:] = leaves
        self.tree.rebuild()
        head = state.get("seen_head")
        self._seen_head = None if head is None else np.asarray(head, dtype=np.int64).copy()


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """``start`` at ``t = 0``, moving linearly to ``end`` at ``t = duration``, then constant."""
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, t / duration)
