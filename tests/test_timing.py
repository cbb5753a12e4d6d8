"""rlcore.timing: where a loop's time goes, as fractions per phase."""

from __future__ import annotations

import time

import pytest

from rlcore.timing import Timing


def test_phases_add_up_to_one_and_reset_at_each_pop():
    timing = Timing("rollout", "update")
    with timing.phase("rollout"):
        time.sleep(0.03)
    with timing.phase("update"):
        time.sleep(0.01)
    out = timing.pop()
    assert set(out) == {"perf/rollout_fraction", "perf/update_fraction"}
    assert out["perf/rollout_fraction"] + out["perf/update_fraction"] == pytest.approx(1.0)
    assert out["perf/rollout_fraction"] > out["perf/update_fraction"]
    assert timing.pop() == {"perf/rollout_fraction": 0.0, "perf/update_fraction": 0.0}


def test_a_phase_that_raises_still_counts():
    timing = Timing("env")
    with pytest.raises(RuntimeError), timing.phase("env"):
        time.sleep(0.01)
        raise RuntimeError
    assert timing.seconds["env"] >= 0.01
