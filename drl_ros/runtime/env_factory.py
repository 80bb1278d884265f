"""Build Gymnasium envs and vector envs from an :class:`~drl_ros.core.config.EnvConfig`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from drl_ros.core.config import EnvConfig
from drl_ros.runtime.env_resume import EpisodeRecorder


def _register(env_id: str) -> None:
    if env_id.startswith("drl_ros/"):
        import drl_ros.envs  # noqa: F401  (registers the drl_ros/ ids)


def make_env(config: EnvConfig, render_mode: str | None = None) -> gym.Env[Any, Any]:
    _register(config.id)
    try:
        return gym.make(config.id, render_mode=render_mode, **config.kwargs)
    except gym.error.Error as error:
        raise ValueError(f"env.id {config.id!r}: {error}") from error


def make_vector_env(config: EnvConfig) -> VectorEnv[Any, Any, Any]:
    """Vector env with same-step autoreset: a finished episode's final observation arrives in
    ``info["final_obs"]`` in the step that ends it, which the buffers need for bootstrapping.
    Each copy records its episode in progress so a checkpoint can resume it exactly
    (:class:`~drl_ros.runtime.env_resume.EpisodeRecorder`)."""
    _register(config.id)
    make_fns = [lambda: EpisodeRecorder(make_env(config)) for _ in range(config.num_envs)]
    if config.vectorization == "async":
        return AsyncVectorEnv(make_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return SyncVectorEnv(make_fns, autoreset_mode=AutoresetMode.SAME_STEP)
