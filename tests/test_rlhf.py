"""PPO on the text environment (agents.rlhf): KL control, group baselines, learning, resume, the CLI."""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path

import pytest
import torch
from lm_helpers import save_tiny_lm

from agents import A2C, PPO
from rlcore.checkpoint import CheckpointError

GOOD = ("good", "great", "best", "fun")


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def count_good(prompts: list[str], completions: list[str]) -> list[float]:
    """Reward: how many of the completion's words are in GOOD."""
    return [float(sum(w in GOOD for w in c.split())) for c in completions]


sys.modules["lm_test_rewards"] = types.SimpleNamespace(count_good=count_good)


@pytest.fixture(scope="module")


def model_dir(tmp_path_factory) -> Path:
    d = save_tiny_lm(tmp_path_factory.mktemp("lm") / "model")
    (d / "prompts.txt").write_text("the movie was\ni thought it\nthis film is\nthe acting\n")
    return d


def text_ppo(model_dir: Path, **kwargs) -> PPO:
    settings = {"model": str(model_dir), "reward": "lm_test_rewards:count_good", "num_envs": 16, "n_steps": 6,
                "max_new_tokens": 6, "batch_size": 48, "learning_rate": 3e-3, "log_interval": 96, **kwargs}
    return PPO("Text-v0", **settings)


def one_round(agent: PPO) -> None:
    """Collect one round of generation, as learn does before each update."""
    if agent.obs is None:
        agent.obs, _ = agent.env.reset(seed=0)
    agent.start_round(agent.collect_round(agent.policy, agent.buffer, agent.obs))


@pytest.mark.parametrize("advantage,device,async_rollout", [("gae", "cpu", False), ("group", "cpu", False),
                                                            ("gae", "cpu", True), ("group", "cpu", True),
                                                            pytest.param("gae", "cuda", False, marks=CUDA),
                                                            pytest.param("group", "cuda", True, marks=CUDA)])


def test_ppo_raises_the_reward_of_a_language_model(model_dir, advantage, device, async_rollout, tmp_path):
    """The small end-to-end check: a random 2-layer GPT-2 learns to say the rewarded words (also
    with generation one update behind, in a background thread)."""
    torch.manual_seed(0)
    agent = text_ppo(model_dir, advantage=advantage, device=device, async_rollout=async_rollout,
                     group_size=4 if advantage == "group" else 1,
                     kl_penalty="loss" if advantage == "group" else "reward",
                     kl_estimator="k3" if advantage == "group" else "k1")
    one_round(agent)
    before = float(agent.rollout_stats["charts/reward_mean"])
    agent.obs = None  # learn starts from a fresh reset
    agent.learn(96 * 25, run_dir=tmp_path, progress=False)
    after = float(agent.rollout_stats["charts/reward_mean"])
    assert after > before + 1.5, (before, after)  # out of 6 tokens; a random policy scores about 0.6
    assert float(agent.rollout_stats["charts/kl"]) > 0
    assert (tmp_path / "summary.json").exists()


def test_kl_in_the_reward_starts_at_zero_and_the_reference_stays_frozen(model_dir):
    agent = text_ppo(model_dir, kl_coef=0.5)
    one_round(agent)
    assert float(agent.rollout_stats["charts/kl"]) == pytest.approx(0.0, abs=1e-5)  # policy == reference
    buf = agent.buffer
    obs, actions = buf.obs.transpose(0, 1), buf.actions.transpose(0, 1)
    ref_before = agent.policy.reference_logprobs(obs, actions)
    for _ in range(3):
        agent._update(agent.buffer, agent.global_step, agent.kl_coef)
    assert torch.equal(agent.policy.reference_logprobs(obs, actions), ref_before)
    with torch.no_grad():
        moved = agent.policy.evaluate_actions(obs, actions)[0]
    assert (moved - ref_before).abs().max() > 1e-3
    one_round(agent)
    kl = float(agent.rollout_stats["charts/kl"])
    assert kl != 0.0
    # Every token's reward carries -kl_coef * KL: summed over real tokens it is the task reward minus 0.5 * episode KL.
    shaped = torch.where(buf.valid, buf.rewards, 0.0).sum(0).mean()
    assert float(shaped) == pytest.approx(float(agent.rollout_stats["charts/reward_mean"]) - 0.5 * kl, abs=1e-4)


@pytest.mark.parametrize("lora_r", [0, 4])


def test_adaptive_kl_coefficient_moves_and_is_checkpointed(model_dir, tmp_path, lora_r):
    agent = text_ppo(model_dir, kl_coef=0.2, kl_target=0.01, kl_horizon=100, lora_r=lora_r)
    agent.learn(96 * 3, run_dir=tmp_path, progress=False)
    assert agent.kl_controller.coef != 0.2
    loaded = PPO.load(tmp_path / "checkpoint.pt", trust=True)  # its reward is a module:function
    assert loaded.kl_controller.coef == agent.kl_controller.coef
    obs = agent.buffer.obs[2]
    with torch.no_grad():
        torch.testing.assert_close(loaded.policy.distribution(obs).logits, agent.policy.distribution(obs).logits)


@pytest.mark.parametrize("async_rollout", [False, True])


def test_interrupted_text_run_resumes_exactly(model_dir, tmp_path, async_rollout):
    """Ctrl-C in round 3: the resumed run ends with the uninterrupted run's weights and KL
    coefficient (the prompt order carries on). With async_rollout, round 3 is generated while
    update 2 runs: the checkpoint holds that round and the KL controller's pending update."""
    config = {"kl_coef": 0.2, "kl_target": 0.01, "kl_horizon": 100, "async_rollout": async_rollout, "seed": 1}
    straight = text_ppo(model_dir, **config).learn(96 * 5, run_dir=tmp_path / "a", progress=False)
    interrupted = text_ppo(model_dir, **config)
    inner, calls = interrupted.env.unwrapped, [0]
    original = inner.step

    def step(action):
        calls[0] += 1
        if calls[0] == 6 * 2 + 3:  # inside round 3
            os.kill(os.getpid(), signal.SIGINT)
        return original(action)

    inner.step = step
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(96 * 5, run_dir=tmp_path / "b", progress=False)
    resumed = PPO.load(tmp_path / "b" / "checkpoint.pt", trust=True)  # its reward is a module:function
    if async_rollout:
        assert resumed.global_step == 96 * 2 and resumed.rollouts.pending
        assert resumed.rollouts.round.kl is not None  # the controller moves when the round is taken
    else:
        assert resumed.global_step == 96 * 3
    resumed.learn(96 * 5, progress=False)
    assert resumed.kl_controller.coef == straight.kl_controller.coef != 0.2
    for x, y in zip(straight.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(x, y)


def test_an_error_in_the_background_round_reaches_the_caller(model_dir, tmp_path):
    calls = []

    def nan_after_two_rounds(prompts: list[str], completions: list[str]) -> list[float]:
        calls.append(len(completions))
        return [float("nan") if len(calls) > 2 else 0.0] * len(completions)

    sys.modules["lm_test_rewards"].nan_after_two_rounds = nan_after_two_rounds
    agent = text_ppo(model_dir, reward="lm_test_rewards:nan_after_two_rounds", async_rollout=True)
    with pytest.raises(ValueError, match="reward function 'nan_after_two_rounds' returned nan"):
        agent.learn(96 * 5, run_dir=tmp_path, progress=False)


def test_text_settings_that_cannot_work_are_refused(model_dir, tmp_path):
    with pytest.raises(ValueError, match="n_steps = 8 must equal max_new_tokens = 6"):
        text_ppo(model_dir, n_steps=8, batch_size=64)
    with pytest.raises(ValueError, match="trained by PPO"):
        A2C("Text-v0", num_envs=4, n_steps=6)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        text_ppo(tmp_path / "missing")
    with pytest.raises(ValueError, match="needs a language model"):
        PPO("Text-v0")
    with pytest.raises(ValueError, match="group_size"):
        text_ppo(model_dir, advantage="group")
    with pytest.raises(ValueError, match="eval_every is not supported"):
        text_ppo(model_dir).learn(96, run_dir=tmp_path, progress=False, eval_every=96)


def test_a_zero_fixed_kl_coefficient_skips_the_reference_pass(model_dir, monkeypatch):
    agent = text_ppo(model_dir, kl_coef=0.0)
    calls = []
    monkeypatch.setattr(agent.policy, "reference_logprobs", lambda *args: calls.append(args))
    one_round(agent)
    assert not calls and "charts/kl" not in agent.rollout_stats and not agent.buffer.has_ref_logprobs


def test_cli_trains_text_v0_writes_the_last_round_and_rl_eval_scores_sampled_completions(model_dir, tmp_path, capsys):
    import json

    from agents.cli import main

    assert main(["train", "ppo", "Text-v0", "--model", str(model_dir), "--reward", "lm_test_rewards:count_good",
                 "--total-steps", "192", "--num-envs", "16", "--n-steps", "6", "--max-new-tokens", "6",
                 "--batch-size", "48", "--run-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Last round: reward_mean" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"reward_mean", "kl", "kl_coef", "response_length"} <= set(summary["last_round"])
    assert main(["eval", str(tmp_path), "--episodes", "20", "--seed", "1", "--json"]) == 2  # the reward is code
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--episodes", "20", "--seed", "1", "--json", "--trust-checkpoint"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["completions"] == 20 and 0 <= result["mean_reward"] <= 6 and len(result["samples"]) == 8
    first = result["samples"][0]
    assert first["reward"] == count_good([first["prompt"]], [first["completion"]])[0]
    assert main(["train", "ppo", "Text-v0", "--model", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "x")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_run_records_its_model_directory_absolute_so_it_evaluates_from_anywhere(model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(model_dir.parent)
    agent = text_ppo(Path(model_dir.name))  # typed relative to here
    assert agent.policy_config.model == str(model_dir.resolve())
    path = agent.save(tmp_path / "model.pt")
    monkeypatch.chdir(tmp_path)
    loaded = PPO.load(path, trust=True)  # its reward is a module:function
    assert loaded.policy_config.model == str(model_dir.resolve())


def test_the_cli_says_text_v0_is_trained_by_ppo_before_anything_else(model_dir, capsys):
    from agents.cli import main

    assert main(["train", "a2c", "Text-v0", "--model", str(model_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Text-v0 is trained by PPO" in err and err.count("\n") == 1


def test_a_runs_reward_code_is_not_imported_to_evaluate_it_unless_trusted(model_dir, tmp_path, monkeypatch, capsys):
    from agents.cli import main

    marker = tmp_path / "imported"
    (tmp_path / "reward_with_side_effect.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef score(prompts, completions):\n    return [0.0] * len(completions)\n")
    agent = text_ppo(model_dir)
    agent.env_config.reward = "reward_with_side_effect:score"  # as a run trained with it records
    agent.save(tmp_path / "run" / "model.pt")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["eval", str(tmp_path / "run"), "--episodes", "2"]) == 2
    assert "reward code (reward_with_side_effect:score)" in capsys.readouterr().err and not marker.exists()
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        PPO.load(tmp_path / "run")
    assert not marker.exists()
    assert main(["eval", str(tmp_path / "run"), "--episodes", "2", "--trust-checkpoint"]) == 0
    assert marker.exists()  # asked for: imported


def test_hostile_values_for_every_text_v0_setting_end_in_one_line(model_dir, tmp_path, monkeypatch, capsys):
    """The hostile-value check of tests/test_cli.py for the KL, Text-v0 environment and LM policy groups."""
    from test_cli import HOSTILE

    from agents.base import setting_groups
    from agents.cli import main
    from rlcore.config import flat_fields

    def no_training(self, total_steps, run_dir=None, **kwargs):
        self.run_dirs, self.summary = [tmp_path], {"final_mean_return": None}
        return self

    monkeypatch.setattr(PPO, "learn", no_training)
    groups = setting_groups(PPO.config_class, "Text-v0")
    names = [n for n in flat_fields(groups["agent"]) if n.startswith("kl_")]
    names += [n for group in ("env", "policy") for n in flat_fields(groups[group])]
    base = ["train", "ppo", "Text-v0", "--model", str(model_dir), "--num-envs", "8", "--n-steps", "6",
            "--max-new-tokens", "6", "--batch-size", "24", "--total-steps", "1", "--no-progress"]
    for name in names:
        for value in HOSTILE:
            code = main([*base, f"--{name.replace('_', '-')}", value])
            out, err = capsys.readouterr()
            assert code in (0, 2), (name, value, code)
            if code == 2:
                assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err, (name, value, err)


def test_rl_eval_writes_every_sampled_completion_as_jsonl(model_dir, tmp_path, capsys):
    import json

    from agents.cli import main

    assert main(["train", "ppo", "Text-v0", "--model", str(model_dir), "--reward", "vader", "--total-steps", "96",
                 "--num-envs", "16", "--n-steps", "6", "--max-new-tokens", "6", "--batch-size", "48",
                 "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    out = tmp_path / "samples.jsonl"
    assert main(["eval", str(tmp_path / "run"), "--episodes", "20", "--seed", "1", "--samples", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 20 and all(set(r) == {"prompt", "completion", "reward"} for r in rows)
    mean = float(capsys.readouterr().out.split("mean reward ")[1].split(" ")[0])
    assert abs(sum(r["reward"] for r in rows) / 20 - mean) < 1e-3
    assert main(["eval", str(tmp_path / "run"), "--samples", str(out), "--video", str(tmp_path / "v")]) == 2
    assert "cannot render rgb_array" in capsys.readouterr().err
