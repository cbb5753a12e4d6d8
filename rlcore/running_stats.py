"""Running mean and variance of a stream of batches, kept on the device."""

from __future__ import annotations

import torch


class RunningMeanStd:
    """Mean and (population) variance of every sample seen so far, per feature.

    Accumulators are float64: in float32 the mean of millions of samples drifts. Each
    ``update`` merges a whole batch with the parallel-variance formula of Chan et al.
    (1979), so it is exact (up to rounding) for any batch size and needs no host sync.
    """

    def __init__(self, shape: tuple[int, ...] = (), device: str | torch.device = "cpu"):
        self.shape = tuple(shape)
        self.device = torch.device(device)
        self.mean = torch.zeros(self.shape, dtype=torch.float64, device=self.device)
        # var starts at 1 so normalising before the first update leaves data unscaled;
        # count 0 makes the first update replace it with the batch's own variance.
        self.var = torch.ones(self.shape, dtype=torch.float64, device=self.device)
        self.count = torch.zeros((), dtype=torch.float64, device=self.device)

    def update(self, x: torch.Tensor) -> None:
        """Merge a batch ``x`` of shape ``[B, *shape]``."""
        x = x.reshape(-1, *self.shape).to(torch.float64)
        batch_count = x.shape[0]
        batch_mean = x.mean(dim=0)
        batch_var = x.var(dim=0, unbiased=False)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + delta.square() * self.count * batch_count / total
        self.mean = self.mean + delta * batch_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        mean = torch.as_tensor(state["mean"], dtype=torch.float64, device=self.device)
        if tuple(mean.shape) != self.shape:
            raise ValueError(f"RunningMeanStd state has shape {tuple(mean.shape)}, expected {self.shape}")
        self.mean = mean.clone()
        self.var = torch.as_tensor(state["var"], dtype=torch.float64, device=self.device).clone()
        self.count = torch.as_tensor(state["count"], dtype=torch.float64, device=self.device).clone()
