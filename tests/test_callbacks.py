"""rlcore/callbacks.py: the hooks a training run calls, the built-ins, and a callback that raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import DQN, PPO
from rlcore.callbacks import Callback, CallbackError, CheckpointEvery, StopAtReturn, StopWhenNoImprovement
from rlcore.checkpoint import CHECKPOINT_NAME

SMALL_DQN = dict(learning_starts=100, train_freq=2, buffer_size=1_000, batch_size=16, hidden_sizes=(16,), num_envs=2,
                 log_interval=100, checkpoint_interval=0)


class Record(Callback):
    def __init__(self, stop_at_evaluation: int | None = None):
        self.calls: list[str] = []
        self.steps: list[int] = []
        self.stop_at_evaluation = stop_at_evaluation

    def on_training_start(self, agent):
        self.calls.append("start")

    def on_step(self, agent, step):
        self.steps.append(step)

    def on_evaluation(self, agent, step, mean_return):
        self.calls.append(f"eval {step}")
        return len(self.calls) - 1 != self.stop_at_evaluation

    def on_training_end(self, agent, summary):
        self.calls.append(f"end {summary['steps']}")


def test_hooks_run_in_order_and_false_stops_the_run(tmp_path: Path):
    record = Record(stop_at_evaluation=1)
    agent = PPO("CartPole-v1", seed=0, checkpoint_interval=0)
    agent.learn(20_000, run_dir=tmp_path, progress=False, eval_every=2_048, eval_episodes=2, callbacks=[record])
    assert agent.global_step == 2_048 and record.calls == ["start", "eval 2048", "end 2048"]
    assert record.steps == list(range(256, 2_049, 256))  # after each rollout (8 copies x 32 steps) and its update


def test_on_step_follows_every_vector_step_of_an_off_policy_agent(tmp_path: Path):
    record = Record()
    DQN("CartPole-v1", **SMALL_DQN).learn(300, run_dir=tmp_path, progress=False, callbacks=[record])
    assert record.steps == list(range(2, 301, 2)) and record.calls == ["start", "end 300"]


def test_checkpoint_every_keeps_the_last_k_and_they_load(tmp_path: Path):
    keep = CheckpointEvery(100, keep_last=2)
    DQN("CartPole-v1", **SMALL_DQN).learn(500, run_dir=tmp_path, progress=False, callbacks=[keep])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_400.pt", "step_500.pt"]
    assert DQN.load(tmp_path / "checkpoints" / "step_400.pt").global_step == 400
    with pytest.raises(ValueError, match="every must be >= 1"):
        CheckpointEvery(0)


def test_stop_at_return_and_stop_when_no_improvement(tmp_path: Path):
    agent = PPO("CartPole-v1", seed=0, checkpoint_interval=0)
    agent.learn(20_000, run_dir=tmp_path, progress=False, eval_every=2_048, eval_episodes=2, callbacks=[StopAtReturn(0.0)])
    assert agent.global_step == 2_048
    patience = StopWhenNoImprovement(patience=2, min_evaluations=3)
    verdicts = [patience.on_evaluation(None, i, r) for i, r in enumerate([10, 12, 11, 11, 9, 20, 19, 18])]
    # evaluation 5 is the second in a row without a new best (after 12) and the fourth overall
    assert verdicts == [True, True, True, False, False, True, True, False]


def test_a_callback_that_raises_saves_the_checkpoint_and_names_itself(tmp_path: Path):
    class Broken(Callback):
        def on_step(self, agent, step):
            if step >= 200:
                raise KeyError("missing key")

    agent = DQN("CartPole-v1", **SMALL_DQN)
    with pytest.raises(CallbackError, match=r"Callback Broken.on_step raised KeyError: 'missing key'. Training stopped; "
                                            r"the checkpoint is .*checkpoint.pt \(resume with --resume"):
        agent.learn(1_000, run_dir=tmp_path, progress=False, callbacks=[Broken()])
    assert DQN.load(tmp_path / CHECKPOINT_NAME).global_step == 200
