"""Plain descriptions of observation and action spaces.

A policy file must say which spaces it was trained on without pickling Gymnasium objects, and
robot computers may load a policy with no simulator installed. These specs are JSON-friendly and
convert from Gymnasium spaces where Gymnasium is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np


@dataclass(frozen=True)
class BoxSpec:
    """A bounded or unbounded real-valued vector space (``gymnasium.spaces.Box``)."""

    low: tuple[float, ...]
    """Lower bound per dimension (``-inf`` where unbounded)."""
    high: tuple[float, ...]
    """Upper bound per dimension (``inf`` where unbounded)."""

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high):
            raise ValueError(f"low has {len(self.low)} entries but high has {len(self.high)}")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError("every low bound must be <= its high bound")

    @property
    def dim(self) -> int:
        return len(self.low)

    @property
    def bounded(self) -> bool:
        return bool(np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)))

    def to_dict(self) -> dict[str, Any]:
        # JSON has no infinity literal: store it as a string so the file stays standard JSON.
        return {"kind": "box", "low": [_encode_float(v) for v in self.low],
                "high": [_encode_float(v) for v in self.high]}


@dataclass(frozen=True)
class DiscreteSpec:
    """A finite set of actions ``{0, ..., n - 1}`` (``gymnasium.spaces.Discrete`` with start 0)."""

    n: int
    """Number of actions."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"a discrete space needs at least one action, got n={self.n}")

    @property
    def dim(self) -> int:
        return 1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "discrete", "n": self.n}


SpaceSpec = Union[BoxSpec, DiscreteSpec]


def _encode_float(value: float) -> float | str:
    return value if np.isfinite(value) else ("inf" if value > 0 else "-inf")


def space_from_dict(data: dict[str, Any]) -> SpaceSpec:
    """Rebuild a spec written by ``to_dict``."""
    kind = data.get("kind")
    if kind == "box":
        return BoxSpec(tuple(float(v) for v in data["low"]), tuple(float(v) for v in data["high"]))
    if kind == "discrete":
        return DiscreteSpec(int(data["n"]))
    raise ValueError(f"unknown space kind {kind!r}; expected 'box' or 'discrete'")


def space_spec(space: Any) -> SpaceSpec:
    """Describe a Gymnasium ``Box`` (flattened to one dimension) or ``Discrete`` space."""
    from gymnasium import spaces  # local import: core users without Gymnasium still load specs

    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError("discrete action spaces must start at 0")
        return DiscreteSpec(int(space.n))
    if isinstance(space, spaces.Box):
        return BoxSpec(tuple(float(v) for v in np.asarray(space.low, dtype=np.float64).ravel()),
                       tuple(float(v) for v in np.asarray(space.high, dtype=np.float64).ravel()))
    raise TypeError(f"unsupported space {space!r}: drl_ros handles Box and Discrete spaces")
