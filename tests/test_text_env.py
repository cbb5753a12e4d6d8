"""TextGenerationEnv: observation layout, step semantics, prompt sources, rewards, checkpoints."""

from __future__ import annotations

import json
import types

import pytest
import torch
from lm_helpers import tiny_model, tiny_tokenizer

from envs.text import TextGenerationEnv, load_prompts, position_ids

TOK = tiny_tokenizer()
PAD, EOS = TOK.pad_token_id, TOK.eos_token_id


def ids(words: str) -> list[int]:
    return TOK.convert_tokens_to_ids(words.split())


class Recorder:
    """A reward function that scores a completion by its number of characters and records each call."""

    name = "recorder"

    def __init__(self):
        self.calls: list[tuple[list[str], list[str]]] = []

    def __call__(self, prompts, completions):
        self.calls.append((list(prompts), list(completions)))
        return [float(len(c)) for c in completions]


def make_env(prompts=("the movie was good", "a film"), reward=None, **kwargs):
    kwargs = {"max_new_tokens": 3, "num_envs": 2, "seed": 0, **kwargs}
    return TextGenerationEnv(list(prompts) if isinstance(prompts, tuple) else prompts, TOK,
                             reward or Recorder(), **kwargs)


def test_left_padding_layout_masks_and_spaces():
    env = make_env(max_new_tokens=3, num_envs=2)
    obs, info = env.reset()
    assert info == {} and env.prompt_len == 4 and env.round_step == 0
    assert obs.dtype == torch.int64 and obs.shape == (2, 2, 7)
    assert env.single_observation_space.shape == (2, 7) and env.single_action_space.n == len(TOK)
    assert env.single_observation_space.contains(obs[0].numpy())
    rows = {tuple(obs[i, 0, :4].tolist()): obs[i, 1].tolist() for i in range(2)}
    assert rows[tuple(ids("the movie was good"))] == [1, 1, 1, 1, 0, 0, 0]
    assert rows[(PAD, PAD, *ids("a film"))] == [0, 0, 1, 1, 0, 0, 0]
    assert (obs[:, 0, 4:] == PAD).all()


def test_position_ids_under_left_padding_match_the_unpadded_prompt():
    assert position_ids(torch.tensor([[0, 0, 1, 1, 1, 0]])).tolist() == [[0, 0, 0, 1, 2, 2]]
    model = tiny_model(TOK)
    env = make_env(("the movie was really very good", "a film", "i loved it"), num_envs=3, max_new_tokens=4)
    obs, _ = env.reset()
    obs, *_ = env.step(torch.tensor(ids("great fun and")))  # two generated tokens, two columns still empty
    obs, *_ = env.step(torch.tensor(ids("plot story ending")))
    tokens, mask = obs[:, 0], obs[:, 1]
    with torch.no_grad():
        batched = model(input_ids=tokens, attention_mask=mask, position_ids=position_ids(mask)).logits
        for i in range(3):
            real = mask[i].bool()
            alone = model(input_ids=tokens[i, real][None]).logits[0]
            torch.testing.assert_close(batched[i, real], alone, atol=1e-5, rtol=0)


def test_eos_terminates_and_the_copy_stays_idle_until_the_round_ends():
    reward = Recorder()
    env = make_env(reward=reward, max_new_tokens=3)
    obs0, _ = env.reset()
    obs, r, term, trunc, info = env.step(torch.tensor([EOS, ids("good")[0]]))
    assert term.tolist() == [True, False] and trunc.tolist() == [False, False]
    assert info["active"].tolist() == [True, True]
    assert reward.calls == [([env._prompts[0]], [""])]  # only the finished copy is scored, EOS not in the text
    assert r.tolist() == [0.0, 0.0]  # "" scores 0 characters
    assert obs[0, :, 4].tolist() == [EOS, 1]  # the EOS token is kept, as a real token
    assert torch.equal(info["final_obs"], obs)
    obs, r, term, trunc, info = env.step(torch.tensor(ids("great great")))
    assert info["active"].tolist() == [False, True]
    assert r.tolist() == [0.0, 0.0] and not term.any() and not trunc.any()
    assert obs[0, :, 5].tolist() == [PAD, 0]  # the idle copy's action is ignored
    assert obs[1, :, 5].tolist() == [ids("great")[0], 1]
    assert len(reward.calls) == 1  # no copy finished: no reward call
    _, r, term, trunc, info = env.step(torch.tensor([len(TOK) + 5, ids("fun")[0]]))  # idle: even invalid ids are ignored
    assert info["active"].tolist() == [False, True]
    assert term.tolist() == [False, False] and trunc.tolist() == [False, True]
    assert r.tolist() == [0.0, float(len("good great fun"))]


def test_truncation_at_max_new_tokens_with_missing_eos_penalty_and_auto_reset():
    reward = Recorder()
    env = make_env(("the movie was good", "a film", "i loved it", "boring"), reward=reward, max_new_tokens=2,
                   missing_eos_penalty=-10.0)
    first, _ = env.reset()
    _, r, term, trunc, _ = env.step(torch.tensor(ids("good bad")))
    assert r.tolist() == [0.0, 0.0] and not (term | trunc).any() and env.round_step == 1
    obs, r, term, trunc, info = env.step(torch.tensor([EOS, ids("fine")[0]]))
    assert term.tolist() == [True, False] and trunc.tolist() == [False, True]
    assert r.tolist() == [len("good"), len("bad fine") - 10.0]  # penalty only where EOS is missing
    final = info["final_obs"]
    assert torch.equal(final[:, :, :4], first[:, :, :4])
    assert final[:, 0, 4:].tolist() == [[ids("good")[0], EOS], ids("bad fine")]
    assert final[:, 1, 4:].tolist() == [[1, 1], [1, 1]]
    # auto-reset: the returned obs is the next round's first, with the other two prompts
    assert env.round_step == 0 and (obs[:, 1, 4:] == 0).all() and (obs[:, 0, 4:] == PAD).all()
    assert not torch.equal(obs[:, :, :4], first[:, :, :4])
    assert info["texts"] == {"prompts": env_prompts(first), "completions": ["good", "bad fine"],
                             "rewards": [4.0, 8.0]}  # raw reward-function scores, before the penalty


def env_prompts(obs):
    return [" ".join(TOK.convert_ids_to_tokens([t for t, m in zip(*row.tolist()) if m])) for row in obs[:, :, :4]]


def test_one_batched_reward_call_per_step_for_the_finished_copies():
    reward = Recorder()
    env = make_env(reward=reward, num_envs=4, max_new_tokens=2)
    env.reset()
    env.step(torch.tensor([EOS, EOS, ids("good")[0], EOS]))
    assert len(reward.calls) == 1 and len(reward.calls[0][1]) == 3
    env.step(torch.tensor(ids("good good good good")))
    assert len(reward.calls) == 2 and reward.calls[1][1] == ["good good"]


def test_group_size_repeats_each_prompt():
    env = make_env(("the movie was good", "a film", "i loved it", "boring"), num_envs=6, group_size=3)
    obs, _ = env.reset()
    assert torch.equal(obs[0], obs[1]) and torch.equal(obs[1], obs[2])
    assert torch.equal(obs[3], obs[5]) and not torch.equal(obs[0], obs[3])
    with pytest.raises(ValueError, match="num_envs=4 is not a multiple of group_size=3"):
        make_env(num_envs=4, group_size=3)


def test_prompt_order_is_seeded_and_cycles_through_all_before_repeating():
    prompts = [f"the {w}" for w in ("movie", "film", "plot", "story", "ending")]

    def drawn(seed, rounds):
        env = make_env(prompts, num_envs=1, max_new_tokens=1, seed=seed)
        env.reset()
        out = [env._prompts[0]]
        for _ in range(rounds - 1):
            env.step(torch.tensor([EOS]))
            out.append(env._prompts[0])
        return out

    first = drawn(0, 10)
    assert sorted(first[:5]) == sorted(prompts) and sorted(first[5:]) == sorted(prompts)
    assert first == drawn(0, 10)
    assert any(drawn(s, 5) != first[:5] for s in (1, 2, 3))


def test_prompt_files_and_their_errors(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("the movie was\n\n  \na film\n")
    assert load_prompts(txt) == ["the movie was", "a film"]
    assert make_env(str(txt)).reset()[0].shape == (2, 2, 3 + 3)
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": "i loved it", "id": 1}) + "\n\n" + json.dumps({"prompt": "boring"}) + "\n")
    assert load_prompts(jsonl) == ["i loved it", "boring"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"text": "no prompt"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: no field 'prompt'; its fields are text: choose one with "
                                         r"--prompt-field"):
        load_prompts(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: not valid JSON"):
        load_prompts(bad)
    with pytest.raises(FileNotFoundError, match="prompt file .*missing.txt.* does not exist"):
        make_env(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt.* holds no prompts"):
        load_prompts(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="the prompt list holds no prompts"):
        make_env([])
    with pytest.raises(ValueError, match="prompt 1 is int 3, not a string"):
        make_env(["a film", 3])


def test_prompts_from_a_field_of_jsonl_or_a_csv_column(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"question": "the movie was", "id": 1}) + "\n" + json.dumps({"question": "a film"}) + "\n")
    assert load_prompts(jsonl, field="question") == ["the movie was", "a film"]
    csv_file = tmp_path / "p.csv"
    csv_file.write_text('id,text\n1,the movie was\n2,"a film, really"\n')
    assert load_prompts(csv_file, field="text") == ["the movie was", "a film, really"]
    assert make_env(str(csv_file), prompt_field="text").reset()[0].shape[0] == 2
    with pytest.raises(ValueError, match=r"p.csv:2: no field 'prompt'; its fields are id, text: choose one with "
                                         r"--prompt-field"):
        load_prompts(csv_file)
    jsonl.write_text(json.dumps({"question": 3}) + "\n")
    with pytest.raises(ValueError, match=r"p.jsonl:1: field 'question' is int 3, not a string"):
        load_prompts(jsonl, field="question")
    with pytest.raises(ValueError, match=r"expected a .txt, .jsonl or .csv file, got '.parquet'"):
        (tmp_path / "p.parquet").write_text("x")
        load_prompts(tmp_path / "p.parquet")


def test_prompt_function_gets_a_seeded_generator():
    seen = []

    def source(n, rng):
        seen.append(n)
        return [" ".join(rng.choice(["good", "bad", "movie", "film"], size=3)) for _ in range(n)]

    env = make_env(source, num_envs=4, group_size=2, seed=3)
    assert env.prompt_len == 64  # nothing to measure: the documented default
    obs, _ = env.reset()
    assert seen == [2] and obs.shape == (4, 2, 67) and obs[:, 1, :64].sum(1).tolist() == [3, 3, 3, 3]
    again = make_env(source, num_envs=4, group_size=2, seed=3).reset()[0]
    assert torch.equal(obs, again)
    broken = make_env(lambda n, rng: ["only one"], num_envs=4)
    with pytest.raises(ValueError, match="must return a list of 4 strings"):
        broken.reset()


def test_long_prompt_keeps_its_end_and_warns():
    long = "i loved it and the movie was good"  # 8 tokens
    with pytest.warns(UserWarning, match="1 of 2 prompts are longer than max_prompt_tokens=4"):
        env = make_env((long, "a film"), context_length=7, max_new_tokens=3)
    assert env.prompt_len == 4
    obs, _ = env.reset()
    rows = [obs[i, 0, :4].tolist() for i in range(2)]
    assert ids("the movie was good") in rows  # the long prompt's last 4 tokens
    with pytest.raises(ValueError, match="context_length=3 leaves no room for a prompt token"):
        make_env(context_length=3, max_new_tokens=3)
    with pytest.raises(ValueError, match="max_prompt_tokens=5 \\+ max_new_tokens=3 exceeds context_length=7"):
        make_env(context_length=7, max_prompt_tokens=5)


def test_tokenizer_without_pad_token_pads_with_eos(tmp_path):
    tok = tiny_tokenizer(pad=False)
    tok.save_pretrained(tmp_path / "tok")
    env = TextGenerationEnv(["the movie was good", "a film"], str(tmp_path / "tok"), Recorder(), max_new_tokens=2,
                            num_envs=2, seed=0)
    assert env.pad_token_id == env.eos_token_id == EOS
    obs, _ = env.reset()
    short = int((obs[:, 1, :4].sum(1) == 2).nonzero())
    assert obs[short, :, :2].tolist() == [[EOS, EOS], [0, 0]]  # eos as padding, masked out
    _, _, term, trunc, _ = env.step(torch.tensor([EOS, EOS]))
    assert term.all() and not trunc.any()  # a generated EOS still ends the completion
    with pytest.raises(ValueError, match="no EOS token"):
        TextGenerationEnv(["a"], types.SimpleNamespace(eos_token_id=None, pad_token_id=0), Recorder())


def test_invalid_actions_are_rejected():
    env = make_env()
    env.reset()
    with pytest.raises(ValueError, match=r"token ids in \[0, 38\); got \[38\] for copies \[1\]"):
        env.step(torch.tensor([3, len(TOK)]))
    with pytest.raises(ValueError, match="integer token ids"):
        env.step(torch.tensor([3.0, 4.0]))
    with pytest.raises(ValueError, match="2 integer token ids"):
        env.step(torch.tensor([3, 4, 5]))


def test_dense_token_reward_only_on_active_steps_and_reward_specs():
    env = make_env(reward=[(Recorder(), 0.0)], token_reward=lambda tokens, active: torch.full(tokens.shape, 0.5))
    env.reset()
    assert env.step(torch.tensor([EOS, 5]))[1].tolist() == [0.5, 0.5]
    assert env.step(torch.tensor([5, 5]))[1].tolist() == [0.0, 0.5]
    env = make_env(reward="2*vader", max_new_tokens=1)
    env.reset()
    r = env.step(torch.tensor(ids("good awful")))[1]
    assert r[0] > 0 > r[1]


def test_running_normalisation_scales_the_rewards_of_finished_copies():
    env = make_env(("a film",), num_envs=4, max_new_tokens=1, normalize="running")
    env.reset()
    r = env.step(torch.tensor(ids("good fun great a")))[1]  # 4, 3, 5, 1 characters: the first batch seen
    expected = torch.tensor([4.0, 3.0, 5.0, 1.0])
    expected = (expected - expected.mean()) / (expected.var(unbiased=False).sqrt() + 1e-8)
    torch.testing.assert_close(r, expected, atol=1e-3, rtol=1e-3)


def test_state_dict_resumes_the_round_in_flight_with_the_same_prompts():
    prompts = [f"the {w}" for w in ("movie", "film", "plot", "story", "ending", "acting")]
    a = make_env(prompts, num_envs=2, max_new_tokens=2, normalize="running", seed=7)
    a.reset()
    for _ in range(3):  # one round and a half
        obs_a, *_ = a.step(torch.tensor(ids("good bad")))
    state = a.state_dict()
    b = make_env(prompts, num_envs=2, max_new_tokens=2, normalize="running", seed=99)
    b.load_state_dict(state)
    obs_b, _ = b.reset()
    assert torch.equal(obs_b[:, :, :b.prompt_len], obs_a[:, :, :a.prompt_len])
    assert b.normalizer.stats.count.item() == a.normalizer.stats.count.item() == 2
    b.step(torch.tensor(ids("good bad")))  # b catches up with a
    end_a, end_b = a.step(torch.tensor(ids("fun sad"))), b.step(torch.tensor(ids("fun sad")))  # the round ends
    assert all(torch.equal(x, y) for x, y in zip(end_a[:4], end_b[:4]))
    assert end_a[4]["texts"] == end_b[4]["texts"] and end_a[1].abs().sum() > 0  # same normalised rewards
    assert torch.equal(end_a[4]["final_obs"], end_b[4]["final_obs"])
    next_a, next_b = a.step(torch.tensor(ids("great awful"))), b.step(torch.tensor(ids("great awful")))
    assert torch.equal(next_a[0], next_b[0])


def test_completions_decode_as_the_tokenizer_does_with_and_without_its_clean_up():
    """The environment decodes through the fast tokenizer's backend when transformers would add no
    clean-up of its own, and through batch_decode when it would: the texts are batch_decode's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>", "the", "movie", "was", "good", "i", "loved", "it", ",", ".", "!"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # spaces before punctuation stay
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>", pad_token="<pad>")
    env = TextGenerationEnv(["the movie"], tok, Recorder(), max_new_tokens=3, num_envs=1, seed=0)
    generated = [tok.convert_tokens_to_ids(w.split()) for w in ("the movie , was good .", "<eos> i loved it !", "")]
    texts = {}
    for clean_up in (False, True):
        tok.clean_up_tokenization_spaces = clean_up
        texts[clean_up] = env._decode(generated)
        assert texts[clean_up] == tok.batch_decode(generated, skip_special_tokens=True)
    assert texts[False] == ["the movie , was good .", "i loved it !", ""]
    assert texts[True] == ["the movie, was good.", "i loved it!", ""]  # transformers' clean-up
