"""Network building blocks: MLPs and a batched ensemble used for twin critics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU,
                                           "gelu": nn.GELU, "silu": nn.SiLU}


def activation_class(name: str) -> type[nn.Module]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int | None, activation: str = "relu",
        output_gain: float | None = None, orthogonal: bool = False) -> nn.Sequential:
    """A plain MLP ``in_dim -> hidden_sizes... -> out_dim``; ``out_dim=None`` ends at the last hidden layer.

    ``orthogonal`` uses the PPO initialization (gain sqrt(2) on hidden layers, ``output_gain`` on
    the last layer), which the PPO implementation-details literature finds to matter.
    """
    act = activation_class(activation)
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden_sizes:
        linear = nn.Linear(last, width)
        if orthogonal:
            nn.init.orthogonal_(linear.weight, math.sqrt(2))
            nn.init.zeros_(linear.bias)
        layers += [linear, act()]
        last = width
    if out_dim is not None:
        linear = nn.Linear(last, out_dim)
        if orthogonal:
            nn.init.orthogonal_(linear.weight, 1.0 if output_gain is None else output_gain)
            nn.init.zeros_(linear.bias)
        layers.append(linear)
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers evaluated in one batched matmul.

    Input ``(n, B, in)`` or ``(B, in)`` (broadcast to every member), output ``(n, B, out)``.
    """

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        # Same distribution as nn.Linear's default, drawn independently for each member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.baddbmm(self.bias, x.unsqueeze(0).expand(self.weight.shape[0], -1, -1),
                                 self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """``n`` independent MLPs with one output each, e.g. SAC's twin Q networks.

    Evaluating both critics in one batched matmul instead of two Python-level passes halves the
    operator count of every critic evaluation, which dominates small-network training on a CPU.
    Input ``(B, in)``, output ``(n, B)``.
    """

    def __init__(self, n: int, in_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        act = activation_class(activation)
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden_sizes:
            layers += [EnsembleLinear(n, last, width), act()]
            last = width
        layers.append(EnsembleLinear(n, last, 1))
        self.net = nn.Sequential(*layers)
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
