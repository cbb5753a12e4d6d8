"""Linear schedules (epsilon, learning rate, PER beta)."""

from __future__ import annotations


def linear_schedule(start: float, end: float, fraction: float, progress: float) -> float:
    """Linear from `start` to `end` over the first `fraction` of training, then constant.

    `progress` is the fraction of training done, in [0, 1].
    """
    if fraction <= 0:
        return end
    return start + (end - start) * min(progress / fraction, 1.0)
