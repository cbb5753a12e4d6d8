"""rlcore.lm: the language-model actor-critic (cached acting, one pass per episode, shared prompts, sampling)."""

from __future__ import annotations

import pytest
import torch
from lm_helpers import tiny_model, tiny_tokenizer

from rlcore.lm import LMActorCritic


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
