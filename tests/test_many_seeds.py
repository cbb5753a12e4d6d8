"""Several PPO seeds at once: each seed is its own agent, with its own runs, and nothing is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agents import PPO
from agents.cli import main
from rlcore.checkpoint import CHECKPOINT_NAME, MODEL_NAME

SMALL = dict(num_envs=4, n_steps=32, batch_size=64, n_epochs=2, log_interval=128, checkpoint_interval=0)


def _state(agent: PPO) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in agent.policy.state_dict().items()}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_each_seed_starts_from_the_weights_of_its_own_single_run(env_id: str) -> None:
    small = {**SMALL, "normalize_obs": False, "normalize_reward": False}  # Pendulum's preset turns them on
    together = PPO(env_id, seeds=[3, 5], **small)
    assert together.env.num_envs == 2 * SMALL["num_envs"]
    for m, seed in enumerate((3, 5)):
        alone = PPO(env_id, seed=seed, **small)
        member = together.member(m)
        assert member.config.seed == seed and member.env.num_envs == SMALL["num_envs"]
        for key, value in _state(alone).items():
            assert torch.equal(member.policy.state_dict()[key], value), key


def test_one_seed_cannot_move_another() -> None:
    """An update in which seed 1's transitions carry no advantage (and no entropy bonus) leaves seed 1's
    actor exactly where it was, while seed 0's moves: the seeds share no gradient."""
    agent = PPO("CartPole-v1", seeds=[0, 1], **SMALL)
    agent.obs, _ = agent.env.reset(seed=0)
    agent.total_steps = 10**6  # the learning rate anneals with progress through total_steps
    agent.start_round(agent.collect_round(agent.policy, agent.buffer, agent.obs))
    agent.buffer.advantages[:, SMALL["num_envs"]:] = 0.0  # member 1's envs: nothing to learn for its actor
    before = agent.member(1).policy.actor_head.logits.weight.clone()
    other_before = agent.member(0).policy.actor_head.logits.weight.clone()
    agent.config.ent_coef = 0.0
    agent._update(agent.buffer, agent.global_step, None)
    assert torch.equal(agent.member(1).policy.actor_head.logits.weight, before)
    assert not torch.equal(agent.member(0).policy.actor_head.logits.weight, other_before)


def test_each_seed_writes_its_own_run_that_loads_as_a_plain_agent(tmp_path: Path) -> None:
    agent = PPO("CartPole-v1", seeds=[0, 1, 2], **SMALL).learn(512, run_dir=tmp_path, progress=False,
                                                               eval_every=256, eval_episodes=2)
    assert agent.global_step >= 512  # per seed
    assert len(agent.summary) == 3
    for m, seed in enumerate((0, 1, 2)):
        run = tmp_path / f"seed{seed}"
        assert (run / CHECKPOINT_NAME).exists() and (run / MODEL_NAME).exists() and list(run.glob("events.out.*"))
        summary = json.loads((run / "summary.json").read_text())
        assert summary == agent.summary[m] and summary["steps"] == agent.global_step
        loaded = PPO.load(run / MODEL_NAME)
        assert loaded.config.seed == seed and loaded.global_step == agent.global_step
        for key, value in agent.member(m).policy.state_dict().items():
            assert torch.equal(loaded.policy.state_dict()[key], value)
    with pytest.raises(ValueError, match="member"):
        agent.save(tmp_path / "all.pt")


def test_bad_seed_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="repeats"):
        PPO("CartPole-v1", seeds=[0, 0])
    with pytest.raises(ValueError, match="target_kl"):
        PPO("CartPole-v1", seeds=[0, 1], target_kl=0.02)
    with pytest.raises(ValueError, match="not both"):
        PPO("CartPole-v1", seeds=[0, 1], seed=4)


def test_cli_seed_ranges(tmp_path: Path, capsys) -> None:
    assert main(["train", "ppo", "CartPole-v1", "--seeds", "0-1,4", "--total-steps", "256", "--no-progress",
                 "--run-dir", str(tmp_path), "--n-steps", "32", "--num-envs", "4", "--batch-size", "64",
                 "--checkpoint-interval", "0"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0", "seed1", "seed4"]
    assert main(["train", "ppo", "CartPole-v1", "--seeds", "3-1"]) == 2
    assert "runs backwards" in capsys.readouterr().err
    assert main(["train", "dqn", "CartPole-v1", "--seeds", "0-1", "--run-dir", str(tmp_path / "dqn")]) == 2
    assert "--seeds" in capsys.readouterr().err and not (tmp_path / "dqn").exists()
