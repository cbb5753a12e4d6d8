"""The offline pretraining of agents/tiny_lm.py: a corpus with room for RL to move sentiment, a tokenizer that
round-trips text, and a pretraining run that learns and saves a model the rest of the project can load."""

from __future__ import annotations

import math
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the network

from agents.tiny_lm import EOS, PAD, build_model, build_tokenizer, generate_corpus, make_prompts, pretrain, sample

vader = pytest.importorskip("vaderSentiment.vaderSentiment")
# A model this small learns in a few steps; the tests fix the step budget (epochs) so the wall clock never decides.
SMALL = dict(n_embd=64, n_layer=1, n_head=2, log=lambda message: None)


def compound(texts: list[str]) -> list[float]:
    analyzer = vader.SentimentIntensityAnalyzer()
    return [analyzer.polarity_scores(text)["compound"] for text in texts]


def test_corpus_is_deterministic_and_mixes_sentiment():
    docs = generate_corpus(1500, seed=0)
    assert docs == generate_corpus(1500, seed=0)
    assert docs != generate_corpus(1500, seed=1)
    assert all(5 <= len(doc.split()) <= 40 for doc in docs)
    scores = compound(docs)
    positive = sum(s > 0.05 for s in scores) / len(scores)
    negative = sum(s < -0.05 for s in scores) / len(scores)
    assert positive > 0.2 and negative > 0.2 and positive + negative < 0.85, (positive, negative)
    assert abs(sum(scores) / len(scores)) < 0.15
    # Neutral reviews (a third) must score exactly 0: a subject or topic word in VADER's lexicon ("special",
    # "jokes", "friend") would leak sentiment into them, and into every review that uses it.
    assert 0.25 < sum(s == 0 for s in scores) / len(scores) < 0.4


def test_prompts_open_reviews_of_every_sentiment():
    prompts = make_prompts(200, seed=0)
    assert prompts == make_prompts(200, seed=0)
    assert all(2 <= len(prompt.split()) <= 5 and prompt == prompt.strip() for prompt in prompts)
    assert len(set(prompts)) > 50
    assert abs(sum(compound(prompts))) < 1e-9  # the prompt itself carries no sentiment
    docs = generate_corpus(6000, seed=0)
    for prompt in ["The movie was", "The film", "I thought the movie"]:
        continued = compound([doc[len(prompt):] for doc in docs if doc.startswith(prompt + " ")])
        assert len(continued) > 20, prompt
        assert min(continued) < -0.3 and max(continued) > 0.3, prompt


def test_tokenizer_round_trips_text_and_separates_pad_from_eos():
    docs = generate_corpus(300, seed=0)
    tokenizer = build_tokenizer(docs, vocab_size=512)
    assert len(tokenizer) == 512
    assert tokenizer.eos_token == tokenizer.bos_token == EOS and tokenizer.pad_token == PAD
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    for text in [docs[0], "Hello  world, it's \"odd\"\ttext\nwith café, ü and 12 spaces   ", " leading space"]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    # A prompt is tokenized as the first ids of a review that starts with it, so generation continues it as
    # pretraining did.
    prompt_ids = tokenizer("The movie was")["input_ids"]
    assert tokenizer("The movie was really great.")["input_ids"][:len(prompt_ids)] == prompt_ids
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(docs, vocab_size=100)
    model = build_model(tokenizer, n_embd=32, n_head=2)
    assert model.config.pad_token_id == tokenizer.pad_token_id and model.config.eos_token_id == tokenizer.eos_token_id


def test_pretrain_writes_a_directory_transformers_loads(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = pretrain(tmp_path / "lm", minutes=0.05, n_docs=200, **SMALL)
    assert result["path"] == str(tmp_path / "lm") and result["steps"] >= 1 and result["seconds"] < 60
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "lm", local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lm", local_files_only=True)
    assert model.config.pad_token_id == tokenizer.pad_token_id != tokenizer.eos_token_id == model.config.eos_token_id
    assert sum(p.numel() for p in model.parameters()) == result["params"]
    prompts = (tmp_path / "lm" / "prompts.txt").read_text().splitlines()
    assert len(prompts) == 256 and prompts == make_prompts(256, seed=0)
    assert (tmp_path / "lm" / "corpus_sample.txt").read_text().splitlines() == generate_corpus(200, seed=0)
    completions = sample(tmp_path / "lm", prompts[:3], max_new_tokens=5, n=4, seed=0)
    assert len(completions) == 4 and all(isinstance(c, str) for c in completions)
    assert completions == sample(tmp_path / "lm", prompts[:3], max_new_tokens=5, n=4, seed=0)


def test_pretrain_lowers_the_loss_and_repeats_per_seed(tmp_path):
    # 640 docs / 32 per batch * 5 epochs = 100 steps. Untrained, the loss is about ln(512) = 6.2; with lr=0 it
    # stays there, so the bound below fails if training does nothing.
    runs = [pretrain(tmp_path / f"lm{i}", minutes=2.0, n_docs=640, epochs=5, batch_size=32, seed=0, **SMALL)
            for i in range(2)]
    assert runs[0]["steps"] == 100
    assert runs[0]["initial_loss"] == pytest.approx(math.log(512), abs=0.3)
    assert runs[0]["loss"] < 4.0, runs[0]
    assert runs[0]["loss"] == runs[1]["loss"]
    from transformers import AutoModelForCausalLM

    a, b = (AutoModelForCausalLM.from_pretrained(tmp_path / f"lm{i}", local_files_only=True) for i in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_pretrain_names_bad_budgets(tmp_path):
    with pytest.raises(ValueError, match="minutes"):
        pretrain(tmp_path, minutes=0)


def test_a_budget_that_fits_no_step_still_takes_one(tmp_path):
    """`rl pretrain-lm --minutes 0.3` on a slow machine: the tokenizer used up the budget before a step."""
    result = pretrain(tmp_path / "lm", minutes=1e-9, n_docs=200, **SMALL)
    assert result["steps"] == 1 and math.isfinite(result["loss"])
