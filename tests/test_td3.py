"""TD3 and DDPG: target policy smoothing, delayed updates, exploration noise, resume, learning, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import DDPG, TD3
from agents.cli import main
from agents.td3 import ExplorationNoise
from rlcore import evaluate
from rlcore.buffers import ReplayBatch
from rlcore.config import ConfigError
from tests.test_dqn import _interrupt_at

SMALL = dict(learning_starts=100, buffer_size=2_000, batch_size=32, hidden_sizes=(32, 32), log_interval=100,
             checkpoint_interval=0)


def _params(agent: TD3) -> list[torch.Tensor]:
    modules = (agent.actor, agent.actor_target, agent.critic, agent.critic_target)
    return [p.detach().clone() for m in modules for p in m.parameters()]


def _batch(n: int = 8) -> ReplayBatch:
    g = torch.Generator().manual_seed(0)
    discounts = torch.full((n,), 0.99)
    discounts[::3] = 0.0
    return ReplayBatch(torch.randn(n, 3, generator=g), torch.rand(n, 1, generator=g) * 2 - 1, torch.randn(n, generator=g),
                       torch.randn(n, 3, generator=g), discounts == 0, torch.zeros(n, dtype=torch.bool), discounts,
                       torch.ones(n), torch.arange(n))


def test_target_policy_smoothing_adds_clipped_noise_and_stays_in_bounds():
    agent = TD3("Pendulum-v1", **SMALL, target_policy_noise=0.2, target_noise_clip=0.5)
    with torch.no_grad():
        agent.actor_target.net[-1].bias.fill_(3.0)  # tanh(~3) ~ 0.995: smoothing would push past 1 unclipped
    obs = torch.randn(4_000, 3)
    clean = agent.actor_target(obs)
    torch.manual_seed(0)
    smoothed = agent.target_actions(obs)
    torch.manual_seed(0)
    noise = (0.2 * torch.randn_like(clean)).clamp(-0.5, 0.5)  # the same draws, by hand
    assert torch.equal(smoothed, (clean + noise).clamp(-1, 1))
    assert smoothed.max() <= 1 and (smoothed - clean).abs().max() <= 0.5 + 1e-6
    assert (smoothed - clean).abs().max() > 0  # noise was added
    ddpg = DDPG("Pendulum-v1", **SMALL)
    assert torch.equal(ddpg.target_actions(obs), ddpg.actor_target(obs))  # no smoothing


def test_critic_target_is_the_minimum_of_the_target_critics_at_the_smoothed_action():
    agent = TD3("Pendulum-v1", **SMALL, seed=2)
    batch = _batch()
    torch.manual_seed(5)
    losses, q = agent._critic_losses(batch)
    torch.manual_seed(5)
    with torch.no_grad():
        next_q = agent.critic_target(batch.next_obs, agent.target_actions(batch.next_obs)).min(0).values
        target = batch.rewards + batch.discounts * next_q
        online = agent.critic(batch.obs, batch.actions)
    assert torch.allclose(losses, ((online - target) ** 2).mean(1)) and torch.allclose(q, online)


@pytest.mark.parametrize("delay", [1, 2, 3])
def test_actor_and_targets_move_only_every_policy_delay_critic_steps(delay: int):
    agent = TD3("Pendulum-v1", **SMALL, seed=0, policy_delay=delay, tau=0.5)
    moved = []
    for _ in range(6):
        before = [p.clone() for m in (agent.actor, agent.actor_target, agent.critic_target) for p in m.parameters()]
        critic_before = [p.clone() for p in agent.critic.parameters()]
        agent._update(_batch())
        after = [p for m in (agent.actor, agent.actor_target, agent.critic_target) for p in m.parameters()]
        assert any(not torch.equal(a, b) for a, b in zip(critic_before, agent.critic.parameters()))  # every step
        moved.append(all(not torch.equal(a, b) for a, b in zip(before, after)))
        assert moved[-1] or all(torch.equal(a, b) for a, b in zip(before, after))
    assert moved == [(k + 1) % delay == 0 for k in range(6)]


def test_polyak_target_update_is_the_hand_computed_average():
    agent = TD3("Pendulum-v1", **SMALL, seed=0, policy_delay=1, tau=0.25)
    target_before = [p.clone() for p in agent.actor_target.parameters()]
    agent._update(_batch())
    for old, online, new in zip(target_before, agent.actor.parameters(), agent.actor_target.parameters()):
        assert torch.allclose(new, 0.75 * old + 0.25 * online)


def test_ornstein_uhlenbeck_noise_is_correlated_and_restarts_where_episodes_end():
    torch.manual_seed(0)
    noise = ExplorationNoise("ornstein-uhlenbeck", 0.5, 2, 1, torch.device("cpu"))
    steps = torch.stack([noise().clone() for _ in range(2_000)])[:, 0, 0]
    assert torch.corrcoef(torch.stack((steps[:-1], steps[1:])))[0, 1] > 0.9  # Gaussian noise would give ~0
    noise.restart(torch.tensor([True, False]))
    assert noise.state[0, 0] == 0 and noise.state[1, 0] != 0
    white = ExplorationNoise("normal", 0.1, 1, 1, torch.device("cpu"))
    draws = torch.stack([white() for _ in range(4_000)]).flatten()
    assert abs(draws.std().item() - 0.1) < 0.01 and abs(torch.corrcoef(torch.stack((draws[:-1], draws[1:])))[0, 1]) < 0.1


def test_ddpg_is_td3_with_one_critic_no_delay_and_no_smoothing():
    ddpg = DDPG("Pendulum-v1")
    assert (ddpg.config.n_critics, ddpg.config.policy_delay, ddpg.config.target_policy_noise) == (1, 1, 0.0)
    assert ddpg.critic.n == 1 and TD3("Pendulum-v1").critic.n == 2


@pytest.mark.parametrize("cls", [TD3, DDPG])
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path: Path, capsys, cls):
    config = {**SMALL, "seed": 3, "save_replay_buffer": True, "num_envs": 2, "action_noise": "ornstein-uhlenbeck"}
    straight = cls("Pendulum-v1", **config).learn(600, run_dir=tmp_path / "a", progress=False)
    interrupted = cls("Pendulum-v1", **config)
    _interrupt_at(interrupted, 151)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(600, run_dir=tmp_path / "b", progress=False)
    assert "--resume" in capsys.readouterr().out and interrupted.global_step == 302
    resumed = cls.load(tmp_path / "b")
    assert resumed.global_step == 302 and len(resumed.buffer) == 302
    resumed.learn(600, progress=False)
    for a, b in zip(_params(straight), _params(resumed)):
        assert torch.equal(a, b)


def test_cli_runs_td3_and_ddpg_with_their_tags(tmp_path: Path):
    for algo in ("td3", "ddpg"):
        run = tmp_path / algo
        assert main(["train", algo, "Pendulum-v1", "--total-steps", "400", "--run-dir", str(run), "--no-progress",
                     "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32",
                     "--log-interval", "100"]) == 0
        events = EventAccumulator(str(run))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        critics = {"losses/qf1", "losses/qf2"} if algo == "td3" else {"losses/qf1"}
        assert critics | {"losses/actor"} <= tags and ("losses/qf2" in tags) == (algo == "td3")


def test_learns_the_torch_native_pendulum(tmp_path: Path):
    """From about -1,200 (random) to -400 or better in 8k steps on a 64-wide network; the zoo's 20k-step
    preset is benchmarked by `rl bench --returns --algo td3`."""
    agent = TD3("Pendulum-v1", seed=0, hidden_sizes=(64, 64), batch_size=128, learning_starts=500,
                checkpoint_interval=0)
    agent.learn(8_000, run_dir=tmp_path, progress=False)
    mean, _ = evaluate(agent, "Pendulum-v1", episodes=10, seed=5)
    assert mean >= -400, mean


def test_bad_input_names_the_problem_and_the_fix(tmp_path: Path):
    with pytest.raises(ValueError, match=r"TD3 needs a Box action space.*Agents that fit: a2c, dqn, ppo"):
        TD3("CartPole-v1")
    with pytest.raises(ConfigError, match=r"TD3Config.tau = 2.0 is invalid: must be in \(0, 1\]"):
        TD3("Pendulum-v1", tau=2.0)
    with pytest.raises(ConfigError, match=r"action_noise = 'gaussian' is invalid: must be one of normal, "):
        TD3("Pendulum-v1", action_noise="gaussian")
    with pytest.raises(ValueError, match=r"DDPG: learning_starts \(10,000\) is not below total_steps \(500\)"):
        DDPG("Pendulum-v1", learning_starts=10_000).learn(500, run_dir=tmp_path / "x", progress=False)
