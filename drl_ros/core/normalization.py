"""Running observation statistics, kept inside the policy so that a saved policy normalizes alone."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ObservationNormalizer(nn.Module):
    """Normalizes observations with running mean and variance, then clips.

    The statistics are buffers (saved with the policy, not trained by gradient). They are updated
    only by the training loop through :meth:`update`, never while acting, so evaluation and
    deployment see fixed statistics.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        # Start with a tiny pseudo-count so the first batch dominates without dividing by zero.
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self.clip = clip
        self.epsilon = epsilon
        self._refresh()

    def _refresh(self) -> None:
        # float32 copies used on the hot path; float64 accumulators keep long runs accurate.
        self._mean32 = self.mean.float()
        self._inv_std32 = (1.0 / torch.sqrt(self.var + self.epsilon)).float()

    def update(self, batch: np.ndarray | torch.Tensor) -> None:
        """Fold a batch ``(B, dim)`` into the statistics (parallel variance algorithm of Chan et al.)."""
        x = torch.as_tensor(np.asarray(batch), dtype=torch.float64).reshape(-1, self.mean.shape[0])
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        batch_count = x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        new_mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta.pow(2) * self.count * batch_count / total
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)
        self._refresh()

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp((obs - self._mean32) * self._inv_std32, -self.clip, self.clip)
