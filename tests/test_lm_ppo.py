"""PPO on the text environment: the language-model policy, KL control, group baselines, learning."""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path

import pytest
import torch
from lm_helpers import save_tiny_lm, tiny_model, tiny_tokenizer

from agents import A2C, PPO
from rlcore.lm import LMActorCritic
from rlcore.rollout import RolloutBuffer, group_advantages

GOOD = ("good", "great", "best", "fun")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def count_good(prompts: list[str], completions: list[str]) -> list[float]:
    """Reward: how many of the completion's words are in GOOD."""
    return [float(sum(w in GOOD for w in c.split())) for c in completions]


# Importable as "lm_test_rewards:count_good", the way --reward names a function.
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


def rollout(P: int, T: int, prompts: list[list[int]], policy: LMActorCritic):
    """Step `policy.act` through one round by hand: the observations, actions, log-probs and values."""
    obs = torch.zeros(len(prompts), 2, P + T, dtype=torch.long)
    for i, p in enumerate(prompts):
        obs[i, 0, P - len(p):P] = torch.tensor(p)
        obs[i, 1, P - len(p):P] = 1
    steps, actions, logprobs, values = [], [], [], []
    with torch.no_grad():
        for t in range(T):
            steps.append(obs.clone())
            a, lp, v = policy.act(obs)
            actions.append(a), logprobs.append(lp), values.append(v)
            obs[:, 0, P + t], obs[:, 1, P + t] = a, 1
    return torch.stack(steps, 1), torch.stack(actions, 1), torch.stack(logprobs, 1), torch.stack(values, 1)


@pytest.mark.parametrize("critic,lora_r,decoder,P", [("head", 0, "gpt2", 4), ("separate", 0, "gpt2", 4),
                                                    ("none", 0, "gpt2", 4), ("head", 4, "gpt2", 4),
                                                    ("head", 0, "gpt2", 7), ("head", 0, "hf", 7), ("head", 4, "hf", 4)])
def test_cached_acting_matches_one_pass_over_the_whole_episode(critic, lora_r, decoder, P, monkeypatch):
    """act feeds one token per call through a KV cache (GPT-2's lean decoder, or the model's own
    forward for other models); evaluate_actions scores the episode in one pass over left-padded
    prompts, with the columns every prompt pads skipped (P = 7). Both must give the same
    log-probabilities and values, and those of the model's own uncached forward pass."""
    import rlcore.lm

    if decoder == "hf":
        monkeypatch.setattr(rlcore.lm.GPT2Decoder, "supports", staticmethod(lambda lm: False))
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    policy = LMActorCritic(tiny_model(tok), prompt_len=P, max_new_tokens=5, critic=critic, lora_r=lora_r,
                           temperature=0.7, top_k=10)
    if critic != "none":
        torch.nn.init.normal_(policy.value_head.weight)  # zero-initialised: make the values worth comparing
    obs, actions, logprobs, values = rollout(P, 5, [[3, 4, 5, 6], [7, 8], [9]], policy)
    assert isinstance(policy._decoders[0], rlcore.lm.GPT2Decoder if decoder == "gpt2" else rlcore.lm.HFDecoder)
    assert policy._first == P - 4
    assert policy._t == 0  # the round is over: the next call starts from prompts
    with torch.no_grad():
        lp, entropy, v = policy.evaluate_actions(obs, actions)
        reference = policy.reference_logprobs(obs, actions)
    torch.testing.assert_close(lp, logprobs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v, values, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reference, lp, atol=1e-5, rtol=1e-5)  # untrained: the policy is the reference
    # Both run through the same decoder; the model's own forward (transformers') over the episode agrees too.
    with torch.no_grad():
        last = obs[:, -1]
        logits, _ = policy._forward(policy.lm, last[:, 0], last[:, 1])
    own = torch.log_softmax(logits[:, P - 1:P + 4] / 0.7, -1).gather(-1, actions[..., None]).squeeze(-1)
    torch.testing.assert_close(own, lp, atol=1e-5, rtol=1e-5)
    assert (entropy > 0).all()
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    if lora_r:
        assert trainable and all("lora" in n or n.startswith("value_head") for n in trainable)


@pytest.mark.parametrize("decoder,lora_r", [("gpt2", 0), ("hf", 0), ("gpt2", 4)])
def test_completions_of_one_prompt_share_its_pass_with_the_same_outputs_and_gradients(decoder, lora_r, monkeypatch):
    """A prompt sampled several times runs once, in acting and in the update's pass: the
    log-probabilities, values and gradients are those of one plain pass per row."""
    import rlcore.lm

    if decoder == "hf":
        monkeypatch.setattr(rlcore.lm.GPT2Decoder, "supports", staticmethod(lambda lm: False))
    torch.manual_seed(0)
    policy = LMActorCritic(tiny_model(tiny_tokenizer()), prompt_len=5, max_new_tokens=4, critic="head", lora_r=lora_r)
    torch.nn.init.normal_(policy.value_head.weight)
    prompts = [[3, 4, 5], [7, 8], [3, 4, 5], [9, 10, 11, 12], [7, 8], [3, 4, 5]]
    obs, actions, logprobs, values = rollout(5, 4, prompts, policy)
    distinct, rows = rlcore.lm.distinct_prompts(obs[:, -1, :, 1:5])
    assert distinct.shape[0] == 3 and rows.tolist() == [1, 0, 1, 2, 0, 1]  # sorted distinct rows

    def outputs(logprob: torch.Tensor, value: torch.Tensor) -> list[torch.Tensor]:
        (logprob.sum() + value.sum()).backward()
        grads = [p.grad.clone() for p in policy.parameters() if p.requires_grad]
        policy.zero_grad()
        return [logprob.detach(), value.detach()] + grads

    shared = outputs(*policy.evaluate_actions(obs, actions)[::2])
    torch.testing.assert_close(shared[0], logprobs, atol=1e-5, rtol=1e-5)  # acting shared the prompt step too
    torch.testing.assert_close(shared[1], values, atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(rlcore.lm, "distinct_prompts", lambda p: (p, None))
    each_row = outputs(*policy.evaluate_actions(obs, actions)[::2])
    last = obs[:, -1]  # and the model's own uncached forward (transformers'), one row each, predicting tokens 0..3
    logits, hidden = (x[:, 4:8] for x in policy._forward(policy.lm, last[:, 0], last[:, 1]))
    plain = outputs(torch.log_softmax(logits, -1).gather(-1, actions[..., None]).squeeze(-1),
                    policy.value_head(hidden).squeeze(-1))
    for a, b, c in zip(shared, each_row, plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-4)


def test_lean_decoder_calls_hooked_layers_as_modules():
    """The lean decoder runs plain layers as functional ops, but a model with a hook gets every
    layer called as a module, so the hook sees each token."""
    torch.manual_seed(0)
    policy = LMActorCritic(tiny_model(tiny_tokenizer()), prompt_len=4, max_new_tokens=3, critic="head")
    calls = []
    for layer in (policy.lm.transformer.h[1].ln_2, policy.lm.transformer.h[0].mlp.c_fc):
        layer.register_forward_hook(lambda module, args, out: calls.append(module))
    rollout(4, 3, [[3, 4, 5], [7, 8]], policy)
    assert len(calls) == 2 * 3  # both layers, once per act call (the prompt, then each new token)


@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_fused_gelu_computes_what_gpt2_did(activation):
    from rlcore.lm import fuse_gelu

    model = tiny_model(tiny_tokenizer(), activation_function=activation)
    ids = torch.randint(3, 30, (4, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        after = fuse_gelu(model)(input_ids=ids).logits
    assert any(isinstance(m, torch.nn.GELU) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_top_k_sampling_stays_in_the_top_k_and_the_value_head_starts_at_zero():
    tok = tiny_tokenizer()
    policy = LMActorCritic(tiny_model(tok), prompt_len=2, max_new_tokens=1, top_k=3)
    obs = torch.tensor([[[3, 4, 0], [1, 1, 0]]]).repeat(200, 1, 1)
    with torch.no_grad():
        actions, _, values = policy.act(obs)
        top3 = policy.distribution(obs).logits[0].topk(3).indices
    assert set(actions.tolist()) <= set(top3.tolist()) and len(set(actions.tolist())) > 1
    assert torch.equal(values, torch.zeros(200))


def test_group_advantages_leave_one_out_by_hand():
    returns = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0])
    # Group 1: 1 - (2+3)/2 = -1.5, 2 - 2 = 0, 3 - 1.5 = 1.5; group 2: 6 - 0, 0 - 3, 0 - 3.
    torch.testing.assert_close(group_advantages(returns, 3), torch.tensor([-1.5, 0.0, 1.5, 6.0, -3.0, -3.0]))
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(returns, 4)


def test_sequence_minibatches_keep_each_episode_whole_and_carry_the_mask():
    buf = RolloutBuffer(3, 4, (2,), torch.long, (), torch.long)
    for t in range(3):
        buf.add(obs=torch.full((4, 2), t), actions=torch.arange(4) + 10 * t, logprobs=torch.zeros(4),
                values=torch.zeros(4), rewards=torch.ones(4), terminated=torch.zeros(4, dtype=torch.bool),
                truncated=torch.full((4,), t == 2), final_values=torch.zeros(4), valid=torch.tensor([True, True, t < 2, True]))
    buf.compute_returns_and_advantages(torch.zeros(4), 1.0, 1.0)
    batches = list(buf.minibatches(2, sequences=True))
    assert [b.actions.shape for b in batches] == [(2, 3), (2, 3)]
    for b in batches:
        env = b.actions[:, 0]
        assert torch.equal(b.actions, env.unsqueeze(1) + torch.tensor([0, 10, 20]))  # steps in order, one env per row
        expected = torch.ones(2, 3, dtype=torch.bool)
        expected[env == 2, 2] = False  # env 2 idled at its last step
        assert torch.equal(b.mask, expected)
        assert b.obs.shape == (2, 3, 2)
    with pytest.raises(ValueError, match="divide num_envs"):
        buf.minibatches(3, sequences=True)


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
    loaded = PPO.load(tmp_path / "checkpoint.pt")
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
    resumed = PPO.load(tmp_path / "b" / "checkpoint.pt")
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
    assert main(["eval", str(tmp_path), "--episodes", "20", "--seed", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["completions"] == 20 and 0 <= result["mean_reward"] <= 6 and len(result["samples"]) == 8
    first = result["samples"][0]
    assert first["reward"] == count_good([first["prompt"]], [first["completion"]])[0]
    assert main(["train", "ppo", "Text-v0", "--model", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "x")]) == 2
    assert "no such directory" in capsys.readouterr().err
