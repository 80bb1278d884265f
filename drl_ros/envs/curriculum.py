"""A success-driven curriculum: the task gets harder as the policy succeeds.

Envs of the robot suite expose ``set_curriculum_level(level)`` with ``level`` in [0, 1] (1 is the
full task and the default, so an env without a curriculum is the plain task). What a level means
is the task's business: goal distance for reach, push and pick-and-place, commanded speed for
walking. A :class:`Curriculum` turns a stream of episode outcomes into a level; the trainer feeds
it training episodes and pushes the level to the training envs, while evaluation stays at
level 1 so that reported success is always on the full task.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from drl_ros.core.config_loading import load_config

__all__ = ["Curriculum", "CurriculumConfig"]


@dataclass
class CurriculumConfig:
    """When the level moves, and by how much."""

    start_level: float = 0.0
    """Level of the first episodes."""
    step: float = 0.1
    """Level change per promotion (or demotion)."""
    window: int = 20
    """Episodes of success history a decision looks at; it is cleared after every change so the
    next decision sees only episodes at the new level."""
    promote_at: float = 0.8
    """Success rate over a full window that raises the level."""
    demote_at: float = 0.2
    """Success rate over a full window that lowers it (never below ``start_level``)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_level <= 1.0:
            raise ValueError("start_level must be in [0, 1]")
        if not 0.0 < self.step <= 1.0:
            raise ValueError("step must be in (0, 1]")
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if not 0.0 <= self.demote_at < self.promote_at <= 1.0:
            raise ValueError("need 0 <= demote_at < promote_at <= 1")


class Curriculum:
    """Tracks recent successes and moves the level (see :class:`CurriculumConfig`)."""

    def __init__(self, config: CurriculumConfig | dict[str, Any] | None = None) -> None:
        if config is None:
            config = CurriculumConfig()
        elif not isinstance(config, CurriculumConfig):
            config = load_config(CurriculumConfig, config, source_name="curriculum")
        self.config = config
        self.level = config.start_level
        self._recent: deque[float] = deque(maxlen=config.window)

    def update(self, success: bool | float) -> float:
        """Record one finished episode; returns the (possibly new) level."""
        self._recent.append(float(success))
        if len(self._recent) < self.config.window:
            return self.level
        rate = float(np.mean(self._recent))
        if rate >= self.config.promote_at and self.level < 1.0:
            self.level = min(1.0, self.level + self.config.step)
            self._recent.clear()
        elif rate <= self.config.demote_at and self.level > self.config.start_level:
            self.level = max(self.config.start_level, self.level - self.config.step)
            self._recent.clear()
        return self.level

    @classmethod
    def for_env(cls, env: Any) -> Curriculum | None:
        """The curriculum an env asks for through its ``curriculum`` kwarg, or None."""
        config = getattr(env, "curriculum_config", None)
        return None if config is None else cls(config)
