"""Reward-model training from preference pairs, on a tiny GPT-2 built in memory (nothing downloaded)."""

import json
import random

import pytest
import torch
from lm_helpers import save_tiny_lm

from agents.reward_model import load_preferences, train_reward_model

POSITIVE = "good great loved fun best happy".split()
NEGATIVE = "bad awful hated boring worst sad".split()
NEUTRAL = "the movie was it very really quite acting plot story".split()
PROMPTS = ["the movie was", "i think this film is", "the acting was", "the story and the ending were"]


def synthetic_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Chosen completions mix two positive words into neutral ones, rejected two negative ones: same length,
    same prompt, so only the sentiment words tell them apart."""
    rng = random.Random(seed)

    def completion(words: list[str]) -> str:
        tokens = rng.sample(words, 2) + rng.sample(NEUTRAL, 2)
        rng.shuffle(tokens)
        return " " + " ".join(tokens)  # the separating space: texts are prompt + completion, joined as is

    return [{"prompt": rng.choice(PROMPTS), "chosen": completion(POSITIVE), "rejected": completion(NEGATIVE)}
            for _ in range(n)]


def load_scorer(path):
    """Exactly how the text environment loads a reward model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return (AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).eval(),
            AutoTokenizer.from_pretrained(path, local_files_only=True))


@pytest.fixture(scope="module", params=[True, False], ids=["pad-token", "no-pad-token"])
def trained(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("rm")
    base = save_tiny_lm(root / "base", pad=request.param)
    messages = []
    result = train_reward_model(base, synthetic_pairs(200), root / "out", epochs=3, lr=1e-3, eval_fraction=0.2,
                                log=messages.append)
    return request.param, result, messages


def test_learns_held_out_preferences(trained):
    _, result, messages = trained
    assert result["pairs"] == 200 and result["eval_pairs"] == 40
    # An untrained head sits near 0.5 accuracy and loss log 2 = 0.693 (checked with lr=1e-7: 0.525, 0.688).
    assert result["eval_accuracy"] >= 0.9
    assert result["train_loss"] < 0.4
    assert any(m.startswith("epoch 3/3") for m in messages)


def test_saved_model_scores_positive_above_negative(trained):
    has_pad, result, _ = trained
    model, tokenizer = load_scorer(result["path"])
    if not has_pad:  # GPT-2-style tokenizer: pad falls back to eos, in the tokenizer and in the config
        assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert (tokenizer.padding_side, tokenizer.truncation_side) == ("right", "left")
    texts = ["the movie was good great loved", "the movie was bad awful hated",
             "i think this film is very fun and happy", "i think this film is very boring and sad"]
    with torch.no_grad():
        scores = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits[:, 0]
    assert scores[0] > scores[1] and scores[2] > scores[3]


def test_score_is_read_at_the_last_real_token(trained):
    has_pad, result, _ = trained
    model, tokenizer = load_scorer(result["path"])
    # Different lengths force padding; the second text holds an EOS mid-text, which with pad == eos has
    # the pad id yet must not end the text.
    texts = ["the movie was good", "the movie <eos> was really fun and great", "bad"]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    assert (encoded["attention_mask"] == 0).any()
    with torch.no_grad():
        scores = model(**encoded).logits[:, 0]
        hidden = model.transformer(**encoded).last_hidden_state
        last = encoded["attention_mask"].sum(-1) - 1  # right padding: the last attended column
        expected = model.score(hidden[torch.arange(len(texts)), last])[:, 0]
        alone = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits[:, 0] for t in texts])
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(scores, alone)  # padding does not change a score
    if not has_pad:
        # Documented: with pad == eos, trailing EOS tokens are skipped, so they do not change the score.
        with torch.no_grad():
            with_eos = model(**tokenizer(["the movie was good <eos>"], return_tensors="pt")).logits[:, 0]
        torch.testing.assert_close(with_eos, scores[:1])


def test_same_seed_same_run(tmp_path):
    base = save_tiny_lm(tmp_path / "base", pad=False)
    runs = [train_reward_model(base, synthetic_pairs(40), tmp_path / f"out{i}", epochs=1, lr=1e-3, log=lambda m: None)
            for i in range(2)]
    assert runs[0]["train_loss"] == runs[1]["train_loss"]
    assert runs[0]["eval_accuracy"] == runs[1]["eval_accuracy"]


def test_load_preferences_reads_jsonl(tmp_path):
    pairs = synthetic_pairs(3)
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(pairs[0]) + "\n\n" + "\n".join(json.dumps({**p, "extra": 1}) for p in pairs[1:]) + "\n")
    assert load_preferences(path) == pairs  # blank lines skipped, extra fields dropped


@pytest.mark.parametrize("lines, match", [
    (['{"prompt": "a", "chosen": "b", "rejected": "c"}', "", '{"prompt": "a", "chosen": '], r"jsonl:3: not valid JSON"),
    (['{"prompt": "a", "chosen": "b", "rejected": "c"}', '{"prompt": "a", "chosen": "b"}'],
     r"jsonl:2: missing field\(s\) rejected"),
    (['{"prompt": "a", "chosen": 3, "rejected": "c"}'], r"jsonl:1: field\(s\) chosen \(int\) must be strings"),
    (['["a", "b", "c"]'], r"jsonl:1: expected a JSON object"),
    (["", "  "], r"holds no preference pairs"),
])
def test_bad_jsonl_names_file_and_line(tmp_path, lines, match):
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match) as error:
        load_preferences(path)
    assert str(path) in str(error.value)


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_preferences(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        train_reward_model(tmp_path / "no-such-model", synthetic_pairs(4), tmp_path / "out")
    # tmp_path exists, so these fail on the arguments, before any model is loaded.
    with pytest.raises(ValueError, match=r"data\[1\]: missing field\(s\) prompt"):
        train_reward_model(tmp_path, [synthetic_pairs(1)[0], {"chosen": "a", "rejected": "b"}], tmp_path / "out")
    with pytest.raises(ValueError, match="no preference pairs"):
        train_reward_model(tmp_path, [], tmp_path / "out")
    with pytest.raises(ValueError, match="eval_fraction"):
        train_reward_model(tmp_path, synthetic_pairs(4), tmp_path / "out", eval_fraction=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        train_reward_model(tmp_path, synthetic_pairs(4), tmp_path / "out", batch_size=0)


def test_environment_reward_model_loads_the_output(trained):
    from envs.rewards import HFRewardModel

    _, result, _ = trained
    reward = HFRewardModel(result["path"])
    scores = reward(["the movie was", "the movie was", "i think this film is"],
                    [" good great loved", " bad awful hated", " very fun"])
    assert scores[0] > scores[1]
    model, tokenizer = load_scorer(result["path"])
    with torch.no_grad():
        direct = model(**tokenizer(["the movie was good great loved"], return_tensors="pt")).logits[:, 0]
    torch.testing.assert_close(scores[:1], direct)  # the environment reads the score this module trained


def test_text_with_no_tokens_is_named(tmp_path):
    base = save_tiny_lm(tmp_path / "base")
    pairs = synthetic_pairs(3) + [{"prompt": "", "chosen": "", "rejected": " bad"}]
    with pytest.raises(ValueError, match="tokenizes to nothing"):
        train_reward_model(base, pairs, tmp_path / "out", eval_fraction=0.0, batch_size=4, log=lambda m: None)
