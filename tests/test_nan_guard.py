"""rlcore.nan_guard: the first non-finite loss or input, kept on the device, reported by step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlcore.nan_guard import NanGuard

CHECKPOINT = Path("run/checkpoint.pt")


def test_finite_values_leave_nothing_to_report():
    guard = NanGuard(torch.device("cpu"))
    guard.record(torch.tensor(1.0), 5)
    guard.record_env(torch.ones(3, 4), torch.zeros(3), 6)
    guard.record_rollout(torch.ones(2, 3, 4), torch.zeros(2, 3), 0, 3)
    guard.check("ppo", CHECKPOINT)
    assert guard.first.tolist() == [-1, -1, -1]


def test_the_first_bad_loss_is_kept_and_named_with_the_last_good_checkpoint_if_there_is_one(tmp_path: Path):
    guard = NanGuard(torch.device("cpu"))
    guard.record(torch.tensor(float("inf")), 40)
    guard.record(torch.tensor(float("nan")), 80)
    with pytest.raises(FloatingPointError, match=r"PPO loss became NaN/inf at environment step 40.*no checkpoint had been"):
        guard.check("ppo", tmp_path / "checkpoint.pt")
    (tmp_path / "checkpoint.pt").write_text("")
    with pytest.raises(FloatingPointError, match=r"step 40.*the last good checkpoint is .*checkpoint.pt \(not overwritten\)"):
        guard.check("ppo", tmp_path / "checkpoint.pt")


def test_a_bad_input_names_its_step_and_copy_and_wins_over_a_loss():
    guard = NanGuard(torch.device("cpu"))
    obs = torch.ones(3, 2)
    obs[2, 1] = float("nan")
    guard.record_env(obs, torch.zeros(3), 12)
    guard.record_env(torch.ones(3, 2), torch.tensor([float("inf"), 0.0, 0.0]), 13)  # later: not kept
    guard.record(torch.tensor(float("nan")), 11)
    with pytest.raises(FloatingPointError, match=r"observation or reward at environment step 12 \(copy 2\)"):
        guard.check("dqn", CHECKPOINT)


def test_a_non_finite_final_value_marks_the_step_that_returned_it():
    guard = NanGuard(torch.device("cpu"))
    final = torch.zeros(4, 3)
    final[2, 1] = float("nan")  # the step after obs[2]: 100 + 3 * 3
    guard.record_rollout(torch.ones(4, 3, 2), torch.zeros(4, 3), 100, 3, final)
    assert guard.first.tolist() == [-1, 109, 1]


def test_a_rollout_reports_its_earliest_bad_step_then_its_lowest_copy():
    """obs[t] came back at start + t * step_size, rewards[t] one step later."""
    guard = NanGuard(torch.device("cpu"))
    obs, rewards = torch.ones(4, 3, 2), torch.zeros(4, 3)
    obs[3, 0, 0] = float("nan")  # step 100 + 3 * 3 = 109, copy 0
    rewards[1, 2] = float("nan")  # step 100 + 2 * 3 = 106, copy 2: earlier
    rewards[1, 1] = float("inf")  # the same step, copy 1: lower
    guard.record_rollout(obs, rewards, 100, 3)
    assert guard.first.tolist() == [-1, 106, 1]


def test_integer_observations_are_not_summed():
    guard = NanGuard(torch.device("cpu"))
    guard.record_rollout(torch.full((2, 3, 5), 50_000, dtype=torch.long), torch.zeros(2, 3), 0, 3)
    guard.check("ppo", CHECKPOINT)


def test_state_round_trip():
    guard = NanGuard(torch.device("cpu"))
    guard.record(torch.tensor(float("nan")), 7)
    restored = NanGuard(torch.device("cpu"))
    restored.load_state_dict(guard.state_dict())
    assert restored.first.tolist() == [7, -1, -1]
