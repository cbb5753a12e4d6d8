"""rlcore.async_rollout: rounds collected beside the update, in a thread or beside a learner process."""

from __future__ import annotations

import copy
import os
import threading

import pytest
import torch

from rlcore.async_rollout import AsyncRollout, Round, learner_process_available
from rlcore.rollout import RolloutBuffer
from rlcore.timing import Timing

N, T = 2, 3


def buffer() -> RolloutBuffer:
    return RolloutBuffer(T, N, (2,), torch.float32, (), torch.long)


class Fixture:
    """A linear 'policy', a collector that writes `obs` into its buffer, and an update that takes one
    Adam step on the buffer's observations; both record the torch threads they ran on."""

    def __init__(self, fail_at_update: int | None = None, exit_at_update: int | None = None):
        torch.manual_seed(0)
        self.policy = torch.nn.Linear(2, 1)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=0.1)
        self.buffer = buffer()
        self.collected: list[int] = []
        self.fail_at_update, self.exit_at_update = fail_at_update, exit_at_update
        self.updates = 0
        self.rollouts = AsyncRollout(self.collect_round, self.policy, copy.deepcopy(self.policy), buffer(), seed=0)

    def collect_round(self, policy: torch.nn.Module, buf: RolloutBuffer, obs: torch.Tensor) -> Round:
        torch.ones(4_000_000).exp_().sum()  # large enough for a parallel region on every thread
        self.collected.append(torch.get_num_threads())
        buf.reset()
        for t in range(T):
            buf.add(obs=obs + t, actions=torch.zeros(N, dtype=torch.long), logprobs=torch.zeros(N),
                    values=policy(obs + t).squeeze(1).detach(), rewards=torch.ones(N),
                    terminated=torch.zeros(N, dtype=torch.bool), truncated=torch.zeros(N, dtype=torch.bool),
                    final_values=torch.zeros(N))
        buf.compute_returns_and_advantages(torch.zeros(N), 0.99, 0.95)
        return Round(obs + T, {"charts/first_obs": obs[0, 0]}, None, kl=None)

    def update(self, buf: RolloutBuffer, step: int, kl_coef: float | None) -> dict[str, torch.Tensor]:
        # In a learner process this runs in the child: its counter is the child's own.
        self.updates += 1
        if self.updates == self.fail_at_update:
            raise ValueError(f"update {self.updates} failed")
        if self.updates == self.exit_at_update:
            os._exit(3)
        torch.ones(4_000_000).exp_().sum()
        self.optimizer.zero_grad()
        self.policy(buf.obs.flatten(0, 1)).sum().backward()
        self.optimizer.step()
        return {"threads": torch.get_num_threads(), "step": step}

    def learn(self, rounds: int, process: bool) -> list[dict]:
        """PPO's loop: take the round collected beside the last update, update beside the next."""
        rollouts, obs, timing, stats = self.rollouts, torch.zeros(N, 2), Timing("rollout", "update"), []
        rollouts.use_process = process
        rollouts.start(self.update, self.optimizer, self.buffer, [*self.policy.parameters()])
        try:
            for k in range(rounds):
                round, self.buffer = rollouts.take(obs, self.buffer)
                obs = round.obs
                next_obs = obs if k < rounds - 1 else None
                stats.append(rollouts.update(self.update, self.buffer, 10 * k, None, next_obs, timing))
        except BaseException:
            rollouts.stop(quiet=True)
            raise
        rollouts.stop()
        return stats


@pytest.mark.parametrize("process", [False, True])
def test_the_threads_split_only_while_both_sides_run(process):
    """The first round (nothing to overlap it with) and the last update (nothing left to collect)
    get every torch thread; each round collected beside an update, and that update, get half. A
    learner process runs its updates on several threads without hanging (it is forked from a
    thread that never ran an OpenMP parallel region)."""
    fixture, seen = Fixture(), {}
    threads = torch.get_num_threads()
    torch.set_num_threads(4)

    def train() -> None:  # in a thread that has run a parallel region, as training does before any fork
        torch.ones(4_000_000).exp_().sum()
        seen["stats"] = fixture.learn(4, process)
        seen["after"] = torch.get_num_threads()

    try:
        trainer = threading.Thread(target=train, daemon=True)
        trainer.start()
        trainer.join(120)
        assert not trainer.is_alive(), "the run hung (a learner process forked from a thread with an OpenMP pool?)"
    finally:
        torch.set_num_threads(threads)
    assert fixture.collected == [4, 2, 2, 2]
    assert [int(s["threads"]) for s in seen["stats"]] == [2, 2, 2, 4] and seen["after"] == 4
    assert [int(s["step"]) for s in seen["stats"]] == [0, 10, 20, 30]


def test_a_learner_process_changes_these_weights_in_place_and_its_optimiser_state_comes_back():
    """The child's optimiser steps land in this process's (shared) parameters: the same weights and
    Adam moments as updating here with the collector in a thread."""
    thread, process = Fixture(), Fixture()
    thread.learn(3, process=False)
    process.learn(3, process=True)
    assert process.updates == 0  # every update ran in the child
    for a, b in zip(thread.policy.parameters(), process.policy.parameters()):
        assert torch.equal(a, b)
    moments = [[t for s in f.optimizer.state_dict()["state"].values() for t in (s["exp_avg"], s["exp_avg_sq"])]
               for f in (thread, process)]
    assert moments[1] and all(torch.equal(a, b) for a, b in zip(*moments))
    assert torch.equal(process.rollouts.shuffle.get_state(), thread.rollouts.shuffle.get_state())


def test_the_collector_acts_with_the_weights_from_before_the_update_in_progress():
    fixture = Fixture()
    before = [p.detach().clone() for p in fixture.policy.parameters()]
    rollouts, timing = fixture.rollouts, Timing("rollout", "update")
    rollouts.use_process = False
    rollouts.start(fixture.update, fixture.optimizer, fixture.buffer, [*fixture.policy.parameters()])
    round, fixture.buffer = rollouts.take(torch.zeros(N, 2), fixture.buffer)
    rollouts.update(fixture.update, fixture.buffer, 0, None, round.obs, timing)  # round 2 collected beside it
    with torch.no_grad():
        old = torch.nn.functional.linear(round.obs, *before).squeeze(1)
    assert rollouts.pending and torch.equal(rollouts.buffer.values[0], old)
    # After the update the collector holds the new weights, for round 3.
    assert all(torch.equal(a, b) for a, b in zip(rollouts.collector.parameters(), fixture.policy.parameters()))
    rollouts.stop()


@pytest.mark.parametrize("process", [False, True])
def test_a_pending_round_survives_a_checkpoint(process):
    fixture = Fixture()
    fixture.learn(2, process)
    state = fixture.rollouts.state_dict()
    assert not state["pending"]  # the last update collects nothing beside it
    fixture.rollouts.collect(torch.full((N, 2), 7.0))
    state = fixture.rollouts.state_dict()
    restored = Fixture()
    restored.rollouts.load_state_dict(state)
    assert restored.rollouts.pending and torch.equal(restored.rollouts.round.obs, torch.full((N, 2), 7.0 + T))
    assert torch.equal(restored.rollouts.buffer.obs, fixture.rollouts.buffer.obs)
    assert torch.equal(restored.rollouts.shuffle.get_state(), fixture.rollouts.shuffle.get_state())


def test_a_round_saved_by_format_1_has_no_observation_and_a_kl_update_pair():
    fixture = Fixture()
    fixture.rollouts.collect(torch.zeros(N, 2))
    state = fixture.rollouts.state_dict()
    del state["obs"]
    state["kl_update"] = (0.25, N)
    restored = Fixture()
    restored.rollouts.load_state_dict(state)
    assert restored.rollouts.round.obs is None and restored.rollouts.round.kl == 0.25


def test_an_error_in_the_learner_process_reaches_the_caller():
    with pytest.raises(ValueError, match="update 2 failed"):
        Fixture(fail_at_update=2).learn(4, process=True)
    with pytest.raises(RuntimeError, match=r"learner process of async_rollout ended unexpectedly \(exit code 3\)"):
        Fixture(exit_at_update=2).learn(4, process=True)


def test_an_error_in_the_collector_thread_reaches_the_caller():
    fixture = Fixture()
    collect = fixture.collect_round

    def failing(policy, buf, obs):
        if len(fixture.collected) == 2:
            raise RuntimeError("round 3 failed")
        return collect(policy, buf, obs)

    fixture.rollouts.collect_round = failing
    with pytest.raises(RuntimeError, match="round 3 failed"):
        fixture.learn(4, process=False)


def test_a_small_dev_shm_keeps_the_update_in_this_process_with_a_warning():
    tensors = [torch.zeros(100_000)]
    with pytest.warns(RuntimeWarning, match=r"/dev/shm has 0 MB free .* --shm-size"):
        assert not learner_process_available(torch.device("cpu"), tensors, shm_free=64 * 1024)
    assert learner_process_available(torch.device("cpu"), tensors, shm_free=2**30)
    assert not learner_process_available(torch.device("meta"), tensors, shm_free=2**30)
