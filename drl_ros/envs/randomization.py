"""Domain randomization: what varies between episodes, and within which ranges.

Configured by one dataclass, loaded strictly from YAML (or a mapping, e.g. an env's ``kwargs``)
with :func:`drl_ros.core.config_loading.load_config`. Every range is ``[low, high]``, sampled
uniformly (integers: inclusive) from the env's seeded ``np_random`` at every reset, so the same
seed gives the same randomized episodes; a range with ``low == high`` fixes the value, and the
defaults change nothing. Example (``config/randomization/a1_walk.yaml``)::

    mass_scale: [0.8, 1.2]
    friction: [0.5, 1.25]
    motor_strength: [0.8, 1.2]
    latency_steps: [0, 2]
    observation_noise: {joint_positions: 0.01, joint_velocities: 0.2}
    initial_joint_noise: 0.05
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drl_ros.core.config_loading import load_config

__all__ = ["DomainRandomization", "RandomizationSample", "load_randomization"]


@dataclass
class DomainRandomization:
    """Per-episode randomization of an env (all defaults: none)."""

    mass_scale: tuple[float, float] = (1.0, 1.0)
    """Factor on the nominal mass of every robot link and task object, drawn per link."""
    friction: tuple[float, float] | None = None
    """Lateral friction coefficient of the ground / table, the objects and the robot's links,
    drawn per body; None keeps the URDF values."""
    motor_strength: tuple[float, float] = (1.0, 1.0)
    """Factor on each motor's force (torque) limit, drawn per motor."""
    latency_steps: tuple[int, int] = (0, 0)
    """Action delay in control steps, drawn per episode: the action applied at step t is the one
    chosen at step t - latency (the robot's neutral action before that)."""
    observation_noise: dict[str, float] = field(default_factory=dict)
    """Half-width of uniform noise added to each named observation term (names as in the env's
    ``policy_contract()``), e.g. ``{joint_velocities: 0.1}``; drawn per step."""
    initial_joint_noise: float = 0.0
    """Half-width (rad) of a uniform offset added to every joint of the robot's reset pose."""

    def __post_init__(self) -> None:
        for name in ("mass_scale", "friction", "motor_strength", "latency_steps"):
            value = getattr(self, name)
            if value is None:
                continue
            low, high = value
            if low > high:
                raise ValueError(f"{name}: low {low} > high {high}")
            if low < 0:
                raise ValueError(f"{name}: values must be non-negative, got {low}")
        if self.mass_scale[0] <= 0:
            raise ValueError("mass_scale must stay positive")
        for term, width in self.observation_noise.items():
            if width < 0:
                raise ValueError(f"observation_noise.{term}: half-width must be non-negative")
        if self.initial_joint_noise < 0:
            raise ValueError("initial_joint_noise must be non-negative")

    @property
    def enabled(self) -> bool:
        """Whether anything is randomized (if not, the env draws no random numbers for it)."""
        return (self.mass_scale != (1.0, 1.0) or self.friction is not None
                or self.motor_strength != (1.0, 1.0) or self.latency_steps != (0, 0)
                or any(w > 0 for w in self.observation_noise.values()) or self.initial_joint_noise > 0)


@dataclass
class RandomizationSample:
    """The values drawn for one episode (reported in ``reset``'s ``info["randomization"]``)."""

    mass_scale: dict[str, np.ndarray] = field(default_factory=dict)
    """Per body name: one factor per link (base first)."""
    friction: dict[str, float] = field(default_factory=dict)
    motor_strength: np.ndarray = field(default_factory=lambda: np.ones(0))
    latency_steps: int = 0
    initial_joint_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))


def load_randomization(source: DomainRandomization | dict[str, Any] | str | os.PathLike[str] | None
                       ) -> DomainRandomization:
    """A :class:`DomainRandomization` from itself, a mapping, a YAML path, or None (none)."""
    if source is None:
        return DomainRandomization()
    if isinstance(source, DomainRandomization):
        return source
    return load_config(DomainRandomization, source, source_name="randomization")


def sample_range(rng: np.random.Generator, bounds: tuple[float, float], size: int | None = None
                 ) -> np.ndarray | float:
    """Uniform in ``[low, high]``; exactly ``low`` when the range is a point (no draw)."""
    low, high = bounds
    if low == high:
        return float(low) if size is None else np.full(size, float(low))
    return rng.uniform(low, high, size)
