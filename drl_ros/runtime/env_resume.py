"""Exact resume of the episodes a vector env is in the middle of.

A checkpoint taken mid-episode must bring each env back to the very state it was in, or the
resumed run diverges from the run that was never interrupted. Env state is rarely exposed (a
PyBullet world, a Gymnasium env's private fields), but an env is a deterministic function of its
random generator and the actions it received: so each sub-env records where its current episode
started (the seed, or the generator state just before ``reset``) and the actions since. Resuming
re-creates the env, resets it from that start and replays the actions. Checked for Pendulum-v1
and the Kuka reach envs: the replayed trajectories are bitwise identical to the originals
(PyBullet's trajectories do not depend on earlier episodes in the same world).

Replay costs one episode's steps per env at resume time; an episode longer than ``max_actions``
stops being recorded and is then resumed the old way (a fresh episode).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["EpisodeRecorder", "ReplayMismatch"]


class ReplayMismatch(RuntimeError):
    """Replaying an episode did not reproduce the recorded observation: the env is not
    deterministic given its generator and actions."""


class EpisodeRecorder(gym.Wrapper[Any, Any, Any, Any]):
    """Records the start and the actions of the current episode; replays them on request.

    ``episode_record`` (get) is ``None`` when the episode is too long to replay, else a dict:
    ``start`` (``{"seed": int | None}`` or ``{"rng": bit-generator state}``), ``options`` and
    ``actions`` (an array, first axis = steps). Setting ``episode_record`` resets the env from
    that start and replays the actions; ``replayed_obs`` then holds the observation it reached.
    Both go through ``VectorEnv.get_attr`` / ``set_attr``, so they work in subprocesses too.
    """

    def __init__(self, env: gym.Env[Any, Any], max_actions: int = 100_000) -> None:
        super().__init__(env)
        self.max_actions = int(max_actions)
        self._start: dict[str, Any] | None = None
        self._options: dict[str, Any] | None = None
        self._actions: list[np.ndarray] | None = []
        self.replayed_obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._start = {"seed": int(seed)}
        else:
            # The generator as reset() will find it: reset consumes it (goal sampling and such).
            self._start = {"rng": _plain(self.env.unwrapped.np_random.bit_generator.state)}
        self._options = options
        self._actions = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self._actions is not None:
            if len(self._actions) >= self.max_actions:
                self._actions = None  # too long to replay: this episode resumes fresh
            else:
                self._actions.append(np.array(action, copy=True))
        return self.env.step(action)

    @property
    def episode_record(self) -> dict[str, Any] | None:
        if self._start is None or self._actions is None:
            return None
        if self._actions:
            actions = np.stack(self._actions)
        else:
            actions = np.zeros((0, *(self.action_space.shape or ())), dtype=self.action_space.dtype or np.float32)
        return {"start": dict(self._start), "options": self._options, "actions": actions}

    @episode_record.setter
    def episode_record(self, record: dict[str, Any]) -> None:
        start = record["start"]
        unwrapped = self.env.unwrapped
        if "seed" in start:
            obs, _ = self.reset(seed=start["seed"], options=record.get("options"))
        else:
            state = start["rng"]
            generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
            generator.bit_generator.state = state
            unwrapped.np_random = generator
            obs, _ = self.reset(options=record.get("options"))
        for action in np.asarray(record["actions"]):
            obs, *_ = self.step(action)
        self.replayed_obs = obs


def _plain(state: dict[str, Any]) -> dict[str, Any]:
    """A bit-generator state with numpy arrays turned into lists (JSON for the checkpoint)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out[key] = _plain(value)
        elif isinstance(value, np.ndarray):
            out[key] = value.tolist()
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out
