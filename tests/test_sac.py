"""SAC: the squashed log-probability, entropy tuning, the losses, resume, logging, learning, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import SAC
from agents.cli import main
from rlcore import evaluate
from rlcore.checkpoint import MODEL_NAME
from rlcore.config import ConfigError
from rlcore.distributions import TanhDiagGaussian
from tests.test_dqn import _interrupt_at

SMALL = dict(learning_starts=100, buffer_size=2_000, batch_size=32, hidden_sizes=(32, 32), log_interval=100,
             checkpoint_interval=0)


def _params(agent: SAC) -> list[torch.Tensor]:
    modules = (agent.actor, agent.critic, agent.critic_target, agent.alpha)
    return [p.detach().clone() for m in modules for p in m.parameters()]


def test_squashed_log_probability_matches_the_numerical_density():
    """d/da P(tanh(u) <= a), with u ~ N(mean, std), by central differences of the Gaussian CDF: the density
    `rsample_with_log_prob` gives, tanh's change of variables included, without using its formula."""
    mean, log_std = torch.tensor([[0.3], [-1.2], [2.0]], dtype=torch.float64), torch.tensor([[-0.5], [0.4], [0.1]],
                                                                                            dtype=torch.float64)
    dist = TanhDiagGaussian(mean, log_std)
    torch.manual_seed(0)
    action, log_prob = dist.rsample_with_log_prob()
    normal = torch.distributions.Normal(mean, log_std.exp())
    h = 1e-6
    cdf = lambda a: normal.cdf(torch.atanh(a))  # noqa: E731
    density = (cdf(action + h) - cdf(action - h)) / (2 * h)
    assert torch.allclose(log_prob, density.log().squeeze(1), atol=1e-5)
    assert torch.allclose(log_prob, dist.log_prob(action), atol=1e-6)  # the atanh round trip agrees
    assert bool((action.abs() < 1).all())


@pytest.mark.parametrize("target, direction", [(5.0, 1), (-5.0, -1)])
def test_entropy_tuning_moves_alpha_toward_the_target(tmp_path: Path, target: float, direction: int):
    """An entropy below the target raises alpha (more exploration is paid for), one above it lowers it."""
    agent = SAC("Pendulum-v1", **SMALL, seed=0, target_entropy=str(target))
    start = float(agent.alpha())
    agent.learn(400, run_dir=tmp_path, progress=False)
    assert direction * (float(agent.alpha()) - start) > 0.01, (start, float(agent.alpha()))


def test_fixed_alpha_stays_and_auto_start_value_is_taken():
    assert float(SAC("Pendulum-v1", ent_coef="0.2").alpha()) == pytest.approx(0.2)
    assert not SAC("Pendulum-v1", ent_coef=0.2).alpha.log_alpha.requires_grad
    tuned = SAC("Pendulum-v1", ent_coef="auto_0.1")
    assert tuned.alpha.log_alpha.requires_grad and float(tuned.alpha()) == pytest.approx(0.1)
    assert SAC("Pendulum-v1").target_entropy == -1.0 and SAC("Pendulum-v1", target_entropy="-2.5").target_entropy == -2.5


def test_critic_loss_is_against_the_soft_clipped_double_q_target():
    agent = SAC("Pendulum-v1", **SMALL, seed=1, ent_coef="0.5")
    batch_size = 4
    obs, next_obs = torch.randn(batch_size, 3), torch.randn(batch_size, 3)
    actions = torch.rand(batch_size, 1) * 2 - 1
    rewards, discounts = torch.randn(batch_size), torch.tensor([0.99, 0.0, 0.99, 0.99])
    from rlcore.buffers import ReplayBatch

    batch = ReplayBatch(obs, actions, rewards, next_obs, discounts == 0, torch.zeros(batch_size, dtype=torch.bool),
                        discounts, torch.ones(batch_size), torch.arange(batch_size))
    next_actions, next_log_prob = torch.rand(batch_size, 1) * 2 - 1, torch.randn(batch_size)
    losses, q = agent._critic_losses(batch, torch.tensor(0.5), next_actions, next_log_prob)
    with torch.no_grad():
        q1 = agent.critic_target.q(torch.cat((next_obs, next_actions), 1).repeat(2, 1)).view(2, -1)
        target = rewards + discounts * (q1.min(0).values - 0.5 * next_log_prob)
        online = agent.critic(obs, actions)
    assert torch.allclose(q, online)
    assert torch.allclose(losses, ((online - target) ** 2).mean(1))


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path: Path, capsys):
    config = {**SMALL, "seed": 3, "save_replay_buffer": True, "num_envs": 2, "gradient_steps": 2, "train_freq": 2}
    straight = SAC("Pendulum-v1", **config).learn(600, run_dir=tmp_path / "a", progress=False)
    interrupted = SAC("Pendulum-v1", **config)
    _interrupt_at(interrupted, 151)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(600, run_dir=tmp_path / "b", progress=False)
    assert "--resume" in capsys.readouterr().out and interrupted.global_step == 302
    resumed = SAC.load(tmp_path / "b")
    assert resumed.global_step == 302 and len(resumed.buffer) == 302
    resumed.learn(600, progress=False)
    for a, b in zip(_params(straight), _params(resumed)):
        assert torch.equal(a, b)


def test_save_load_predict_scales_actions_to_the_box(tmp_path: Path):
    agent = SAC("Pendulum-v1", **SMALL, seed=0).learn(300, run_dir=tmp_path, progress=False)
    loaded = SAC.load(tmp_path / MODEL_NAME)
    obs = torch.randn(6, 3)
    assert torch.equal(agent.predict(obs), loaded.predict(obs))
    action = loaded.predict(np.zeros(3, dtype=np.float32), deterministic=False)
    assert isinstance(action, np.ndarray) and action.shape == (1,) and -2 <= action[0] <= 2
    torch.manual_seed(0)
    samples = loaded.predict(obs.repeat(200, 1), deterministic=False)
    assert samples.abs().max() <= 2 and samples.abs().max() > 1  # the squashed [-1, 1] is rescaled to +-2


def test_cli_run_logs_the_sac_tags_and_keeps_the_best_model(tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert main(["train", "sac", "Pendulum-v1", "--total-steps", "600", "--run-dir", str(run), "--no-progress",
                 "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32", "--log-interval", "100",
                 "--eval-every", "300", "--eval-episodes", "2"]) == 0
    assert "best" in capsys.readouterr().out and (run / "best_model.pt").is_file()
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"losses/qf1", "losses/qf2", "losses/actor", "losses/alpha", "charts/alpha", "eval/mean_return"} <= tags
    assert main(["eval", str(run), "--best", "--episodes", "2"]) == 0


def test_learns_the_torch_native_pendulum_in_seconds(tmp_path: Path):
    """From about -1,200 (random) to -400 or better in 4k steps on a 64-wide network; the zoo's 20k-step
    preset is benchmarked by `rl bench --returns --algo sac`."""
    agent = SAC("Pendulum-v1", seed=1, hidden_sizes=(64, 64), batch_size=128, learning_rate=1e-3, learning_starts=500,
                checkpoint_interval=0)
    agent.learn(4_000, run_dir=tmp_path, progress=False)
    mean, _ = evaluate(agent, "Pendulum-v1", episodes=10, seed=5)
    assert mean >= -400, mean


def test_bad_input_names_the_problem_and_the_fix(tmp_path: Path, capsys):
    with pytest.raises(ValueError, match=r"SAC needs a Box action space.*Discrete.*Agents that fit: a2c, dqn, ppo"):
        SAC("CartPole-v1")
    with pytest.raises(ConfigError, match=r"SACConfig.tau = 1.5 is invalid: must be in \(0, 1\]"):
        SAC("Pendulum-v1", tau=1.5)
    with pytest.raises(ConfigError, match=r"SACConfig.tau = 0.0 is invalid"):
        SAC("Pendulum-v1", tau=0.0)
    with pytest.raises(ConfigError, match=r"target_entropy = 'auto-' is invalid: give 'auto' \(-dim\(A\)\) or a number"):
        SAC("Pendulum-v1", target_entropy="auto-")
    with pytest.raises(ConfigError, match=r"ent_coef = 'auto_x' is invalid: give a positive number"):
        SAC("Pendulum-v1", ent_coef="auto_x")
    with pytest.raises(ValueError, match=r"learning_starts \(5,000\) is not below total_steps \(1,000\)"):
        SAC("Pendulum-v1", learning_starts=5_000).learn(1_000, run_dir=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()  # refused before anything was written

    class Unbounded(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Box(-np.inf, np.inf, (1,))

    gym.register("UnboundedAction-v0", entry_point=lambda: Unbounded())
    with pytest.raises(ValueError, match=r"unbounded: clip or rescale the actions.*ClipAction or RescaleAction"):
        SAC("UnboundedAction-v0", backend="gymnasium")
    assert main(["train", "sac", "Pendulum-v1", "--target-entropy", "auto-"]) == 2
    err = capsys.readouterr().err
    assert "a negative target is written as a number" in err and err.count("\n") == 1
    assert math.isfinite(SAC("Pendulum-v1", target_entropy="-0.5").target_entropy)
