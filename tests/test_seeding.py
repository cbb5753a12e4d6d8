"""rlcore.seeding: seeding and RNG state round trips."""

from __future__ import annotations

import random

import numpy as np
import torch

from rlcore.seeding import rng_state, seed_everything, set_rng_state


def _draws() -> tuple[torch.Tensor, np.ndarray, float]:
    return torch.rand(3), np.random.rand(3), random.random()


def _assert_same(a, b) -> None:
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_seed_everything_reproduces_draws():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    _assert_same(first, _draws())
    seed_everything(124)
    assert not torch.equal(first[0], _draws()[0])


def test_rng_state_round_trip():
    seed_everything(7)
    state = rng_state()
    first = _draws()
    _draws()  # move every generator on
    set_rng_state(state)
    _assert_same(first, _draws())
