"""rlcore.run: the training run an agent's learn loop drives, against a stand-in agent."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import envs
from rlcore.checkpoint import BEST_MODEL_NAME, CHECKPOINT_NAME, MODEL_NAME
from rlcore.interrupt import Terminated
from rlcore.nan_guard import NanGuard
from rlcore.run import RunDirectoryError, TrainingRun, json_safe, lock_run_dir


@dataclass
class Settings:
    seed: int = 0
    log_interval: int = 10
    checkpoint_interval: int = 25


class Stub:
    """An agent as TrainingRun sees it: CartPole with a constant action, counting its steps by hand."""

    algo, env_id = "stub", "CartPole-v1"

    def __init__(self, seeds: tuple[int, ...] | None = None, action: int | str = 0, checkpoint_interval: int = 25):
        self.config = Settings(checkpoint_interval=checkpoint_interval)
        self.seeds, self.action = seeds, action
        self.env = envs.make(self.env_id, num_envs=2, seed=0)
        self.global_step, self.run_dir, self.run_dirs, self.device = 0, None, [], torch.device("cpu")
        self.nan_guard = NanGuard(self.device)
        self.saved: list[tuple[int, str, bool]] = []
        self.obs, _ = self.env.reset(seed=0)

    def member(self, m: int) -> "Stub":
        return self

    def save(self, path: str | Path, include_buffer: bool = False) -> Path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("saved")
        self.saved.append((self.global_step, Path(path).name, include_buffer))
        return Path(path)

    def predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        if self.action == "balance":  # push toward the side the pole leans to: far longer episodes
            return (obs[:, 2] > 0).long()
        return torch.full((obs.shape[0],), self.action, dtype=torch.long)

    def make_eval_env(self, env_id: str | None = None, num_envs: int = 1, seed: int | None = None):
        return envs.make(env_id or self.env_id, num_envs=num_envs, seed=seed)

    def step(self, n: int = 5) -> None:
        for _ in range(n // 2):
            self.obs = self.env.step(self.predict(self.obs))[0]
        self.global_step += n


def train(agent: Stub, run: TrainingRun, total: int) -> list[int]:
    """The learn loop every agent writes; returns the steps at which it logged."""
    logged = []
    with run.start():
        agent.run_dir, agent.run_dirs = run.run_dir, run.run_dirs  # as Agent.prepare_run does
        while agent.global_step < total and not run.stopped:
            agent.step()
            if run.log({"losses/x": torch.tensor(1.0)}):
                logged.append(agent.global_step)
            run.evaluate()
            run.checkpoint()
        agent.summary = run.finish()
    return logged


def test_log_checkpoint_and_finish_happen_in_the_calls_the_loop_makes(tmp_path: Path):
    agent = Stub()
    run = TrainingRun(agent, 60, {"algo": "stub"}, ("rollout",), run_dir=tmp_path / "r", progress=False,
                      include_buffer=True)
    assert not (tmp_path / "r").exists()  # nothing is written before start
    logged = train(agent, run, 60)
    assert logged == [10, 20, 30, 40, 50, 60]
    assert [s for s in agent.saved] == [(25, CHECKPOINT_NAME, True), (50, CHECKPOINT_NAME, True),
                                        (60, CHECKPOINT_NAME, True), (60, MODEL_NAME, False)]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["steps"] == 60 and summary["final_mean_return"] is None and agent.summary == summary
    assert json.loads((tmp_path / "r" / "config.json").read_text())["algo"] == "stub"
    assert list((tmp_path / "r").glob("events.out.*"))


def test_evaluation_stops_the_run_at_the_target_and_records_when(tmp_path: Path):
    agent = Stub(checkpoint_interval=0)  # always pushing left: CartPole falls after about 10 steps
    run = TrainingRun(agent, 1_000, {}, (), run_dir=tmp_path, progress=False, eval_every=20, eval_episodes=2,
                      stop_at_return=5.0)
    train(agent, run, 1_000)
    assert agent.global_step == 20 and agent.summary["steps_to_threshold"] == 20
    assert agent.summary["final_mean_return"] >= 5.0 and agent.summary["wall_time_to_threshold"] > 0
    assert [s[:2] for s in agent.saved] == [(20, BEST_MODEL_NAME), (20, CHECKPOINT_NAME), (20, MODEL_NAME)]

    agent = Stub(checkpoint_interval=0)
    run = TrainingRun(agent, 50, {}, (), run_dir=tmp_path / "b", progress=False, eval_every=20, eval_episodes=2,
                      stop_at_return=1_000.0)
    train(agent, run, 50)  # never reached: a final evaluation at the end (the last one was at 40)
    assert agent.global_step == 50 and "steps_to_threshold" not in agent.summary
    events = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert events["final_mean_return"] == agent.summary["final_mean_return"]


def test_the_best_evaluation_is_kept_as_best_model_and_a_resume_replaces_it_only_with_a_better_one(tmp_path: Path):
    agent = Stub(checkpoint_interval=0)
    policies = {20: 0, 40: "balance", 60: 0}  # the policy evaluated at each step: bad, good, bad

    def evaluations(run: TrainingRun, total: int) -> list[tuple[int, str]]:
        agent.saved.clear()
        with run.start():
            agent.run_dir, agent.run_dirs = run.run_dir, run.run_dirs
            while agent.global_step < total:
                agent.step(20)
                agent.action = policies.get(agent.global_step, 0)
                run.evaluate()
            agent.summary = run.finish()
        return [s[:2] for s in agent.saved if s[1] == BEST_MODEL_NAME]

    settings = {"run_dir": tmp_path, "progress": False, "eval_every": 20, "eval_episodes": 2}
    assert evaluations(TrainingRun(agent, 60, {}, (), **settings), 60) == [(20, BEST_MODEL_NAME), (40, BEST_MODEL_NAME)]
    best = agent.summary["best_mean_return"]
    assert agent.summary["best_step"] == 40 and best > agent.summary["final_mean_return"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["best_step"] == 40
    policies = {80: 0, 100: "balance"}  # resumed in the same directory: a worse one is not kept, an equal one neither
    assert evaluations(TrainingRun(agent, 100, {}, (), **settings), 100) == []
    assert agent.summary["best_step"] == 40 and agent.summary["best_mean_return"] == best
    agent.run_dir, agent.run_dirs = None, []  # a fresh run elsewhere: a best of its own
    assert evaluations(TrainingRun(agent, 120, {}, (), **{**settings, "run_dir": tmp_path / "b"}), 120) == [
        (120, BEST_MODEL_NAME)]
    never = Stub(checkpoint_interval=0)
    train(never, TrainingRun(never, 20, {}, (), run_dir=tmp_path / "c", progress=False), 20)
    assert "best_step" not in never.summary and not (tmp_path / "c" / BEST_MODEL_NAME).exists()


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_ctrl_c_or_sigterm_stops_at_the_step_boundary_saves_and_says_how_to_resume(tmp_path: Path, capsys, signum,
                                                                                  raised):
    agent = Stub(checkpoint_interval=0)
    run = TrainingRun(agent, 1_000, {}, (), run_dir=tmp_path, progress=False)
    step = agent.step

    def interrupted_step(n: int = 5) -> None:
        step(n)
        if agent.global_step == 15:
            os.kill(os.getpid(), signum)

    agent.step = interrupted_step
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    with pytest.raises(raised) as stopped:
        train(agent, run, 1_000)
    assert (type(stopped.value) is Terminated) == (signum == signal.SIGTERM)
    assert agent.global_step == 15 and agent.saved == [(15, CHECKPOINT_NAME, False)]
    out = capsys.readouterr().out
    assert "Interrupted at step 15" in out and f"rl train stub CartPole-v1 --resume {tmp_path}" in out
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before
    assert not (tmp_path / "summary.json").exists()


def test_a_nan_stops_the_run_at_the_next_log_and_keeps_the_last_good_checkpoint(tmp_path: Path):
    agent = Stub()
    run = TrainingRun(agent, 100, {}, (), run_dir=tmp_path, progress=False)
    step = agent.step

    def nan_at_30(n: int = 5) -> None:
        step(n)
        if agent.global_step == 30:
            agent.nan_guard.record(torch.tensor(float("nan")), agent.global_step)

    agent.step = nan_at_30
    with pytest.raises(FloatingPointError, match=r"STUB loss became NaN/inf at environment step 30.*checkpoint.pt"):
        train(agent, run, 100)
    assert agent.saved == [(25, CHECKPOINT_NAME, False)]


def test_several_seeds_get_a_directory_logger_and_summary_each(tmp_path: Path):
    agent = Stub(seeds=(4, 7), checkpoint_interval=0)
    run = TrainingRun(agent, 20, {"algo": "stub"}, (), run_dir=tmp_path, progress=False)
    assert run.run_dirs == [tmp_path / "seed4", tmp_path / "seed7"] and run.run_dir == tmp_path
    train(agent, run, 20)
    assert len(agent.summary) == 2
    for seed in (4, 7):
        assert json.loads((tmp_path / f"seed{seed}" / "config.json").read_text())["seed"] == seed
        assert (tmp_path / f"seed{seed}" / "summary.json").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"eval_every": -1}, "eval_every = -1 must be >= 0"),
    ({"eval_episodes": 0}, "eval_episodes = 0 >= 1"),
    ({"stop_at_return": 10.0}, "stop_at_return needs eval_every > 0"),
    ({"stop_at_return": float("nan"), "eval_every": 10}, "stop_at_return = nan is invalid"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path: Path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingRun(Stub(), 100, {}, (), run_dir=tmp_path / "r", **kwargs)
    with pytest.raises(ValueError, match="total_steps = 0 is invalid"):
        TrainingRun(Stub(), 0, {}, (), run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_run_directory_is_the_given_one_else_the_agents_else_a_new_one(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = Stub()
    assert TrainingRun(agent, 10, {}, (), run_dir=tmp_path / "x").run_dir == tmp_path / "x"
    fresh = TrainingRun(agent, 10, {}, ()).run_dir
    assert fresh.parent == Path("runs") and fresh.name.startswith("CartPole-v1__stub__0__")
    agent.run_dir = tmp_path / "loaded"
    assert TrainingRun(agent, 10, {}, ()).run_dir == tmp_path / "loaded"


def _checksums(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def test_a_new_run_never_writes_into_another_runs_directory(tmp_path: Path):
    first = Stub(checkpoint_interval=0)
    train(first, TrainingRun(first, 20, {}, (), run_dir=tmp_path / "x", progress=False), 20)
    before = _checksums(tmp_path / "x")
    assert {"config.json", "checkpoint.pt", "model.pt", "summary.json"} <= set(before)
    with pytest.raises(RunDirectoryError, match=r"holds another run .*--resume .*x.*or give a fresh run directory"):
        TrainingRun(Stub(), 20, {}, (), run_dir=tmp_path / "x", progress=False)
    assert _checksums(tmp_path / "x") == before
    # The run's own agent goes on writing there (a resumed agent's run_dir is where it was loaded from).
    first.summary = None
    train(first, TrainingRun(first, 40, {}, (), run_dir=tmp_path / "x", progress=False), 40)
    assert first.global_step == 40
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirectoryError, match="is a file, not a directory"):
        TrainingRun(Stub(), 20, {}, (), run_dir=tmp_path / "file")


def test_two_processes_cannot_train_into_one_directory(tmp_path: Path):
    held = lock_run_dir(tmp_path / "r")
    try:
        child = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from rlcore.run import "
                                "lock_run_dir; lock_run_dir(Path(sys.argv[1]))", str(tmp_path / "r")],
                               capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        assert child.returncode != 0 and "is in use by another training process" in child.stderr
        agent = Stub()
        with pytest.raises(RunDirectoryError, match="in use by another training process"):
            TrainingRun(agent, 20, {}, (), run_dir=tmp_path / "r", progress=False).start()
    finally:
        held.close()
    run = TrainingRun(Stub(checkpoint_interval=0), 20, {}, (), run_dir=tmp_path / "r", progress=False)
    train(run.agent, run, 20)  # released: now it trains


def test_summary_json_holds_no_nan():
    assert json_safe({"final_mean_return": float("nan"), "steps": 5, "last_round": {"kl": float("inf"), "x": 1.5}}) == \
        {"final_mean_return": None, "steps": 5, "last_round": {"kl": None, "x": 1.5}}
