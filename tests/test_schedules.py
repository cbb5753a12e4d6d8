"""rlcore.schedules."""

from __future__ import annotations

import pytest

from rlcore.schedules import linear_schedule


@pytest.mark.parametrize("progress, expected", [(0.0, 1.0), (0.05, 0.525), (0.1, 0.05), (0.5, 0.05), (1.0, 0.05)])


def test_linear_schedule(progress, expected):
    assert linear_schedule(1.0, 0.05, 0.1, progress) == pytest.approx(expected)


def test_linear_schedule_zero_fraction_is_the_end_value():
    assert linear_schedule(1.0, 0.05, 0.0, 0.0) == 0.05
    assert linear_schedule(0.4, 1.0, 1.0, 0.25) == pytest.approx(0.55)  # PER beta annealing
