"""Rewards on strings: validation, VADER, a Hugging Face reward model, combinations, specs, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lm_helpers import tiny_tokenizer

from envs.rewards import CombinedReward, HFRewardModel, RewardNormalizer, reward_from_spec, vader_reward, validate_rewards

PROMPTS = ["p0", "p1", "p2", "p3"]


def test_validate_rewards_accepts_numbers_of_any_kind():
    values = [1, 2.5, np.float32(-0.5), torch.tensor(3.0)]
    out = validate_rewards("f", values, 4)
    assert out.dtype == torch.float32 and out.tolist() == [1.0, 2.5, -0.5, 3.0]
    assert validate_rewards("f", torch.arange(3), 3).tolist() == [0.0, 1.0, 2.0]
    assert validate_rewards("f", np.ones(2), 2).tolist() == [1.0, 1.0]
    scores = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)  # a reward model's output
    out = validate_rewards("f", scores, 2)
    assert out.dtype == torch.float32 and not out.requires_grad and out.tolist() == [0.5, -1.0]
    out += 1  # a copy: the caller's tensor is untouched
    assert scores.tolist() == [0.5, -1.0]


@pytest.mark.parametrize("values, match", [
    ([1.0, 2.0, 3.0], r"'score' returned 3 values for 4 samples"),
    ([0.0, 1.0, 2.0, float("nan")], r"'score' returned nan for sample 3 \(prompt 'p3'\)"),
    ([0.0, float("inf"), 2.0, 3.0], r"'score' returned inf for sample 1"),
    ([0.0, "1.0", 2.0, 3.0], r"'score' returned str '1.0' for sample 1 .*not a real number"),
    ([None, 1.0, 2.0, 3.0], r"'score' returned NoneType None for sample 0"),
    ([0.0, 1.0, [2.0], 3.0], r"'score' returned list \[2.0\] for sample 2"),
    (1.0, r"'score' returned float 1.0, not a sequence of 4 numbers"),
    (torch.zeros(4, 1), r"'score' returned an array of shape \(4, 1\)"),
    (torch.tensor([0.0, 1.0, float("nan"), 3.0]), r"'score' returned nan for sample 2 \(prompt 'p2'\)"),
    (np.array([0.0, float("-inf"), 2.0, 3.0]), r"'score' returned -inf for sample 1"),
    (torch.zeros(3), r"'score' returned 3 values for 4 samples"),
])
def test_validate_rewards_errors_name_function_and_sample(values, match):
    with pytest.raises(ValueError, match=match) as err:
        validate_rewards("score", values, 4, PROMPTS)
    assert "one finite real number per (prompt, completion) pair" in str(err.value)  # says what to fix


def test_vader_scores_sentiment_of_completions():
    scores = vader_reward(["", ""], ["I loved this wonderful, great movie!", "an awful, horrible, boring film"])
    assert scores[0] > 0.5 and scores[1] < -0.5


def test_combined_reward_weights_and_validates_each_term():
    def ones(p, c):
        return [1.0] * len(c)

    def lengths(p, c):
        return [len(x) for x in c]

    combined = CombinedReward([(ones, 2.0), (lengths, 0.5)])
    assert combined(["a", "b"], ["xx", "xxxx"]).tolist() == [3.0, 4.0]
    assert combined.name == "2*ones+0.5*lengths"

    def broken(p, c):
        return [1.0, float("nan")]

    with pytest.raises(ValueError, match=r"'broken' returned nan for sample 1"):
        CombinedReward([(ones, 1.0), (broken, 1.0)])(["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="not a .callable, finite weight. pair"):
        CombinedReward([(ones, "2")])


def test_reward_from_spec_parses_weights_and_import_paths(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text("def exclaim(prompts, completions):\n"
                                            "    return [c.count('!') for c in completions]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    single = reward_from_spec("vader")
    assert [(fn, w) for fn, w in single.terms] == [(vader_reward, 1.0)]
    combined = reward_from_spec(" 2*vader + -0.5*my_rewards:exclaim")
    assert [w for _, w in combined.terms] == [2.0, -0.5]
    completions = ["great!!", "awful"]
    expected = [2 * v - 0.5 * c.count("!") for v, c in zip(vader_reward(["", ""], completions), completions)]
    assert combined(["", ""], completions).tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("spec, error, match", [
    ("length", ValueError, r"unknown reward 'length'; valid forms: \"vader\""),
    ("x*vader", ValueError, "weight 'x' is not a number"),
    ("vader+", ValueError, "empty term"),
    ("no_such_module_xyz:fn", ValueError, "cannot import 'fn' from module 'no_such_module_xyz'"),
    ("rm:/no/such/rm_dir", FileNotFoundError, "'/no/such/rm_dir' does not exist"),
])
def test_reward_from_spec_errors(spec, error, match):
    with pytest.raises(error, match=match):
        reward_from_spec(spec)


RM_WORDS = ("good bad movie film great awful the a is was plot zebra").split()


def _save_reward_model(path, seed=0):
    """A GPT-2 classifier over its own 12-word vocabulary, saved with a tokenizer that has no pad token."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tokenizer = tiny_tokenizer(pad=False, words=RM_WORDS)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2, num_labels=1)
    model = GPT2ForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer


def test_hf_reward_model_uses_its_own_tokenizer(tmp_path):
    model, rm_tokenizer = _save_reward_model(tmp_path / "rm")
    assert len(rm_tokenizer) != len(tiny_tokenizer())  # not the policy's vocabulary
    rm = HFRewardModel(tmp_path / "rm", batch_size=2)
    assert rm.name == f"rm:{tmp_path / 'rm'}"
    prompts = ["the movie was ", "a film ", "the plot ", "zebra "]
    completions = ["good", "bad great awful", "was great", "is"]
    scores = rm(prompts, completions)  # two batches of two, padded on the right with eos
    with torch.no_grad():
        alone = [model(**rm_tokenizer(p + c, return_tensors="pt")).logits[0, 0].item()
                 for p, c in zip(prompts, completions)]
    assert scores.tolist() == pytest.approx(alone, abs=1e-5)
    assert len(set(np.round(alone, 4))) == 4  # the texts really get different scores

    short = HFRewardModel(tmp_path / "rm", max_length=2)  # left truncation keeps the end of the text
    with torch.no_grad():
        end = model(**rm_tokenizer("great awful", return_tensors="pt")).logits[0, 0].item()
    assert short(["a film "], ["bad great awful"]).tolist() == pytest.approx([end], abs=1e-5)


def test_hf_reward_model_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="reward model directory .*missing_rm.* does not exist"):
        HFRewardModel(tmp_path / "missing_rm")


def test_reward_normalizer_running_matches_numpy():
    rng = np.random.default_rng(0)
    norm = RewardNormalizer("running")
    seen = []
    for size in (1, 5, 3, 8):
        batch = rng.normal(2.0, 3.0, size)
        seen.extend(batch)
        out = norm(torch.tensor(batch, dtype=torch.float32))
        expected = (batch - np.mean(seen)) / (np.std(seen) + 1e-8)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    restored = RewardNormalizer("running")
    restored.load_state_dict(norm.state_dict())
    assert restored.stats.count.item() == len(seen)
    assert restored.stats.mean.item() == pytest.approx(np.mean(seen))


def test_reward_normalizer_none_and_unknown_modes():
    x = torch.tensor([1.0, 2.0, 6.0])
    assert torch.equal(RewardNormalizer("none")(x), x)
    with pytest.raises(ValueError, match="choose one of none, running"):
        RewardNormalizer("whiten")


def test_a_reward_model_directory_is_recorded_absolute_so_the_run_evaluates_from_anywhere(tmp_path, monkeypatch):
    from envs.text import TextEnvConfig

    (tmp_path / "rm").mkdir()
    monkeypatch.chdir(tmp_path)
    config = TextEnvConfig(reward="2*vader+0.5*rm:rm+rm:missing")
    assert config.reward == f"2*vader+0.5*rm:{tmp_path.resolve() / 'rm'}+rm:missing"  # a missing one stays as typed
    assert TextEnvConfig(reward="rm:rm").reward == f"rm:{tmp_path.resolve() / 'rm'}"
    assert TextEnvConfig(reward="mypkg.mod:fn").reward == "mypkg.mod:fn"
