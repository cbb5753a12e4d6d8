"""DQN: losses, options, determinism, checkpoints and resume, bad input."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from agents import DQN
from agents.dqn import QNetwork
from rlcore import evaluate
from rlcore.checkpoint import CHECKPOINT_NAME, MODEL_NAME, CheckpointError
from rlcore.config import ConfigError

SMALL = dict(learning_starts=200, train_freq=2, gradient_steps=1, target_update_interval=100, buffer_size=2_000,
             batch_size=32, hidden_sizes=(32,), num_envs=2, log_interval=200, checkpoint_interval=0)
OPTIONS = [
    {},
    {"double": True, "dueling": True, "n_step": 3, "prioritized": True},
    {"tau": 0.05, "target_update_interval": 2, "normalize_obs": True, "anneal_lr": True},
]


def _params(agent: DQN) -> list[torch.Tensor]:
    return [p.detach().clone() for p in [*agent.q.parameters(), *agent.q_target.parameters()]]


def _interrupt_at(agent: DQN, at_call: int) -> None:
    """Deliver a real SIGINT during the `at_call`-th vector-environment step, as Ctrl-C would."""
    inner = agent.env.unwrapped
    original, calls = inner.step, [0]

    def step(action):
        calls[0] += 1
        if calls[0] == at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(action)

    inner.step = step


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "rainbow-ish", "polyak-normobs"])
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path: Path, options, capsys):
    config = {**SMALL, **options, "seed": 3}
    straight = DQN("CartPole-v1", **config).learn(1_200, run_dir=tmp_path / "a", progress=False)

    interrupted = DQN("CartPole-v1", **config)
    _interrupt_at(interrupted, 301)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(1_200, run_dir=tmp_path / "b", progress=False)
    assert "--resume" in capsys.readouterr().out
    assert interrupted.global_step == 602  # stopped at the step boundary after the signal
    assert any((tmp_path / "b").glob("events.out.tfevents.*"))

    resumed = DQN.load(tmp_path / "b")
    assert resumed.global_step == 602 and len(resumed.buffer) == 602
    resumed.learn(1_200, progress=False)
    assert resumed.global_step == straight.global_step == 1_200
    for a, b in zip(_params(straight), _params(resumed)):
        assert torch.equal(a, b)


def test_seeded_runs_are_identical_and_seeds_differ(tmp_path: Path):
    runs = [DQN("CartPole-v1", **SMALL, seed=s).learn(600, run_dir=tmp_path / str(i), progress=False)
            for i, s in enumerate((1, 1, 2))]
    same = all(torch.equal(a, b) for a, b in zip(_params(runs[0]), _params(runs[1])))
    differ = any(not torch.equal(a, b) for a, b in zip(_params(runs[0]), _params(runs[2])))
    assert same and differ


def test_target_stays_fixed_and_online_net_moves_between_hard_updates(tmp_path: Path):
    agent = DQN("CartPole-v1", **{**SMALL, "target_update_interval": 10_000}, anneal_lr=False, seed=0)  # lr > 0 at the end
    agent.learn(400, run_dir=tmp_path, progress=False)
    target_before, online_before = _params(agent)[4:], _params(agent)[:4]
    for _ in range(5):
        agent._train()
    assert all(torch.equal(a, b) for a, b in zip(target_before, list(agent.q_target.parameters())))
    assert any(not torch.equal(a, b) for a, b in zip(online_before, list(agent.q.parameters())))
    assert all(p.grad is None for p in agent.q_target.parameters())


def test_anneal_lr_decays_the_step_size_linearly_to_zero(tmp_path: Path):
    annealed = DQN("CartPole-v1", **SMALL, anneal_lr=True, learning_rate=1e-3, seed=0)
    annealed.learn(1_000, run_dir=tmp_path / "a", progress=False)
    assert annealed.optimizer.param_groups[0]["lr"] == 0.0  # the last update ran at step 1,000 of 1,000
    annealed.global_step = 250
    annealed._train()
    assert annealed.optimizer.param_groups[0]["lr"] == pytest.approx(0.75e-3)
    constant = DQN("CartPole-v1", **SMALL, learning_rate=1e-3, anneal_lr=False, seed=0)
    constant.learn(1_000, run_dir=tmp_path / "b", progress=False)
    assert constant.optimizer.param_groups[0]["lr"] == 1e-3


def test_dueling_head_is_mean_centred():
    import gymnasium as gym

    net = QNetwork(gym.spaces.Box(-1, 1, (3,)), 4, (8,), dueling=True)
    obs = torch.randn(5, 3)
    h = net.torso(obs)
    adv = net.head(h)
    assert torch.allclose(net(obs).mean(1), net.value(h).squeeze(1) + adv.mean(1) - adv.mean(1), atol=1e-6)


def test_save_load_predict_and_evaluate(tmp_path: Path):
    agent = DQN("CartPole-v1", **SMALL, seed=0).learn(400, run_dir=tmp_path, progress=False)
    assert (tmp_path / MODEL_NAME).is_file() and (tmp_path / CHECKPOINT_NAME).is_file()
    loaded = DQN.load(tmp_path / MODEL_NAME)
    obs = torch.randn(7, 4)
    assert torch.equal(agent.predict(obs), loaded.predict(obs))
    single = loaded.predict(obs[0].numpy())
    assert single.shape == () and int(single) == int(agent.predict(obs[:1])[0])
    mean, std = evaluate(loaded, "CartPole-v1", episodes=5, seed=0)
    again = evaluate(loaded, "CartPole-v1", episodes=5, seed=0)
    assert (mean, std) == again and 8 <= mean <= 500


def test_learns_cartpole_quickly(tmp_path: Path):
    """A small learning test: the preset's schedule on a 64-wide network for 8k steps takes the greedy
    policy far above a random or untrained one (about 10 to 25). The 100k-step benchmark is in
    tests/benchmarks/bench_dqn_cartpole.py."""
    agent = DQN("CartPole-v1", seed=0, hidden_sizes=(64, 64), checkpoint_interval=0)
    agent.learn(8_000, run_dir=tmp_path, progress=False)
    mean, _ = evaluate(agent, "CartPole-v1", episodes=10, seed=123)
    assert mean >= 100, mean


def test_nan_reward_stops_with_step_and_copy_and_keeps_last_good_checkpoint(tmp_path: Path):
    agent = DQN("CartPole-v1", **{**SMALL, "checkpoint_interval": 400}, seed=0)
    inner = agent.env.unwrapped
    original, calls = inner.step, [0]

    def step(action):  # copy 1's reward turns NaN at the 501st vector step (environment step 1002)
        calls[0] += 1
        obs, reward, term, trunc, info = original(action)
        if calls[0] > 500:
            reward = reward.clone()
            reward[1] = float("nan")
        return obs, reward, term, trunc, info

    inner.step = step
    with pytest.raises(FloatingPointError, match=r"NaN/inf observation or reward at environment step 1002 \(copy 1\)"):
        agent.learn(3_000, run_dir=tmp_path, progress=False)
    good = DQN.load(tmp_path / CHECKPOINT_NAME)
    assert good.global_step == 800
    assert all(torch.isfinite(p).all() for p in good.q.parameters())


def test_an_inf_final_observation_is_reported_as_the_environments(tmp_path: Path):
    """Only the true last observation of an episode a time limit cut is bad: the input check names
    its step, instead of the loss going NaN later."""
    agent = DQN("CartPole-v1", **{**SMALL, "checkpoint_interval": 0}, seed=0)
    inner = agent.env.unwrapped
    original, calls = inner.step, [0]

    def step(action):
        calls[0] += 1
        obs, reward, term, trunc, info = original(action)
        if calls[0] == 300:
            trunc, final = trunc.clone(), info["final_obs"].clone()
            trunc[0], final[0, 2] = True, float("inf")
            info = {**info, "final_obs": final}
        return obs, reward, term, trunc, info

    inner.step = step
    with pytest.raises(FloatingPointError, match=r"observation or reward at environment step 600 \(copy 0\)"):
        agent.learn(3_000, run_dir=tmp_path, progress=False)


def test_nan_loss_stops_with_step(tmp_path: Path):
    agent = DQN("CartPole-v1", **{**SMALL, "checkpoint_interval": 400}, seed=0)
    original, calls = agent._loss, [0]

    def loss(*args):  # the 100th gradient step's loss is NaN
        calls[0] += 1
        value, stats = original(*args)
        return (value * float("nan") if calls[0] == 100 else value), stats

    agent._loss = loss
    with pytest.raises(FloatingPointError, match=r"DQN loss became NaN/inf at environment step \d+"):
        agent.learn(3_000, run_dir=tmp_path, progress=False)
    assert DQN.load(tmp_path / CHECKPOINT_NAME).global_step == 400


def test_bad_hyperparameters_name_the_problem():
    with pytest.raises(ConfigError, match=r"Unknown hyperparameter 'learning_rat' .*did you mean 'learning_rate'"):
        DQN("CartPole-v1", learning_rat=1e-3)
    with pytest.raises(ConfigError, match=r"DQNConfig.gamma = 1.5 is invalid: must be in \(0, 1\]"):
        DQN("CartPole-v1", gamma=1.5)
    with pytest.raises(ConfigError, match=r"batch_size = 512 is invalid: must be <= buffer_size \(100\)"):
        DQN("CartPole-v1", batch_size=512, buffer_size=100)


def test_continuous_action_space_is_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"DQN needs a Discrete action space.*Box"):
        DQN("Pendulum-v1")


def test_unknown_environment_names_close_matches():
    with pytest.raises(ValueError, match="CartPole-v1"):
        DQN("CartPol-v1")


def test_missing_and_corrupt_checkpoints(tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        DQN.load(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="No checkpoint in run directory"):
        DQN.load(tmp_path)
    bad = tmp_path / CHECKPOINT_NAME
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=f"'{bad}' is corrupt"):
        DQN.load(tmp_path)
    assert bad.read_bytes() == b"not a checkpoint at all"
