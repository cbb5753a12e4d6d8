"""A tiny GPT-2 pretrained offline on generated movie reviews: the stand-in for the GPT-2 + IMDB pair of
TRL's sentiment example (https://huggingface.co/docs/trl/sentiment_tuning), small enough to pretrain in two
minutes on a CPU and to fine-tune with RL in ten.

What RL needs from the pretrained model is room to move: its continuations of a neutral prompt such as
"The movie was" must be a mix of positive, negative and neutral reviews (mean VADER compound near 0), written
with sentiment words VADER's lexicon knows. So the corpus is generated from templates in which the sentiment of
a review is drawn independently of how it opens, and the prompts are those openings.

`pretrain` leaves the thread count to the caller (`torch.set_num_threads`): the CLI, tests and benchmarks each
know what else is running on the machine; this module does not.

The pipeline, top to bottom: word lists, `generate_corpus`, `make_prompts`, `build_tokenizer`, `build_model`,
`pretrain`, `sample`.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:  # transformers takes seconds to import; only the functions that need it import it
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<pad>"

# Every word below was checked against VADER's lexicon: sentiment words and closers score with their list's
# sign; neutral words, subjects, intensifiers and topics are not in it (e.g. "honestly" +2.0, "truly" +1.9,
# "special" +1.7, "jokes" +1.0, "friend" +2.2, "war" -2.9 are in it, so they are left out).
POSITIVE_ADJ = ("good", "great", "wonderful", "excellent", "amazing", "fantastic", "brilliant", "beautiful", "enjoyable",
                "delightful", "superb", "charming", "fun", "entertaining", "clever", "funny", "lovely", "impressive",
                "perfect", "gorgeous")
NEGATIVE_ADJ = ("bad", "awful", "terrible", "boring", "dull", "weak", "poor", "disappointing", "horrible", "dreadful",
                "painful", "stupid", "annoying", "ugly", "lame", "forced")
NEUTRAL_ADJ = ("long", "short", "slow", "quiet", "loud", "simple", "unusual", "familiar", "different", "ordinary",
               "colorful", "plain", "predictable", "dark", "cheap")
POSITIVE_VERB = ("loved", "enjoyed", "liked", "adored", "appreciated")
NEGATIVE_VERB = ("hated", "disliked")
NEUTRAL_VERB = ("watched", "saw", "rented", "streamed", "finished")
# "" is the most common intensifier: most reviews say "was great", fewer "was extremely great".
INTENSIFIERS = ("", "", "", "", "very ", "really ", "so ", "quite ", "extremely ", "incredibly ", "absolutely ",
                "fairly ", "somewhat ")
# Before a noun ("a very good film") "so" and "quite" do not read as English.
ATTRIBUTIVE_INTENSIFIERS = ("", "", "", "very ", "really ", "extremely ", "incredibly ", "fairly ", "somewhat ")
# (noun phrase, plural)
SUBJECTS = (("movie", False), ("film", False), ("plot", False), ("acting", False), ("story", False),
            ("ending", False), ("cast", False), ("script", False), ("music", False), ("soundtrack", False),
            ("dialogue", False), ("director", False), ("lead actor", False), ("camera work", False),
            ("pacing", False), ("first half", False), ("last scene", False), ("characters", True),
            ("actors", True), ("visual effects", True), ("gags", True), ("costumes", True))
WHOLE = ("movie", "film", "story", "plot")  # subjects a topic sentence ("was about ...") fits
DETERMINERS = (("the", "the"), ("the", "the"), ("the", "the"), ("this", "these"))  # (singular, plural)
LEADS = ("", "", "", "", "Overall, ", "In my opinion, ", "To me, ", "For me, ", "I thought ", "I felt that ",
         "I think ", "My brother said ", "At first ")
COPULAS = (("was", "were"), ("was", "were"), ("is", "are"), ("felt", "felt"), ("seemed", "seemed"))
KINDS = ("film", "movie", "story", "experience", "watch", "evening", "sequel", "mystery", "drama")
TOPICS = ("a detective in Rome", "two brothers on a farm", "a teacher in a small town", "a family moving to Ohio",
          "a pilot and her son", "an old man and his dog", "a band on tour", "three students in Paris",
          "a chef in New York", "a boxer from Chicago", "a journey across the desert", "a robot on the moon",
          "a lawyer and a reporter", "a girl who builds a boat", "life on a small island")
PLACES = ("a small town", "London", "the desert", "a big city", "the mountains", "the nineteen seventies", "space",
          "an old house", "a village in Spain", "the future")
COMPANY = ("my brother", "my sister", "a neighbor", "my parents", "my kids", "my wife", "my husband", "my roommate",
           "some coworkers", "nobody")
WHEN = ("last night", "on Sunday", "on a plane", "at home", "in the theater", "last weekend", "on television",
        "after work")
RUNTIMES = ("ninety minutes", "a hundred minutes", "two hours", "eighty minutes", "almost three hours")
POSITIVE_CLOSERS = ("I would recommend it to anyone.", "It was worth every minute.", "I smiled the whole time.",
                    "I loved every minute of it.", "I would happily watch it again.", "It made me laugh a lot.")
NEGATIVE_CLOSERS = ("It was a waste of time.", "What a mess.", "I was bored the whole time.", "I regret buying a ticket.",
                    "I hated every minute of it.", "I fell asleep, it was so boring.")
NEUTRAL_CLOSERS = ("It is on television this week.", "The sequel comes out next year.", "It is rated for teens.",
                   "It was shot in Canada.", "The book came first.", "I watched it in two parts.")
SENTIMENTS = ("positive", "negative", "neutral")


def _subject(rng: random.Random, whole: bool = False) -> tuple[str, bool]:
    noun, plural = (rng.choice(WHOLE), False) if whole else rng.choice(SUBJECTS)
    return f"{rng.choice(DETERMINERS)[plural]} {noun}", plural


def _adjective(rng: random.Random, sentiment: str) -> str:
    return rng.choice({"positive": POSITIVE_ADJ, "negative": NEGATIVE_ADJ, "neutral": NEUTRAL_ADJ}[sentiment])


def _opposite(sentiment: str) -> str:
    return {"positive": "negative", "negative": "positive"}[sentiment]


def _opening(rng: random.Random) -> tuple[str, bool, tuple[str, str]]:
    """The words a review starts with, up to and including its subject: the prompts are prefixes of these."""
    lead = rng.choice(LEADS)
    subject, plural = _subject(rng, whole=rng.random() < 0.4)
    text = lead + subject if lead else subject[0].upper() + subject[1:]
    copulas = COPULAS[:3] if "felt" in lead else COPULAS  # not "I felt that the film felt"
    return text, plural, rng.choice(copulas)


def _first_sentence(rng: random.Random, sentiment: str) -> str:
    """Opening + predicate; the opening is drawn before, and independently of, the sentiment."""
    opening, plural, copula = _opening(rng)
    verb = copula[plural]
    if sentiment == "neutral":
        if opening.split()[-1] in WHOLE and rng.random() < 0.5:
            return f"{opening} {verb} about {rng.choice(TOPICS)}."
        return f"{opening} {verb} {rng.choice(INTENSIFIERS)}{_adjective(rng, 'neutral')}."
    r = rng.random()
    if r < 0.04:  # rare negation ("was not bad"): VADER reads it, but most sentiment should rest on one word
        return f"{opening} {verb} not {_adjective(rng, _opposite(sentiment))}."
    if r < 0.10:  # rare contrast: VADER weighs the clause after "but" more, so the doc keeps its sentiment
        other, other_plural = _subject(rng)
        return (f"{opening} {verb} {_adjective(rng, _opposite(sentiment))} but {other} "
                f"{copula[other_plural]} {rng.choice(INTENSIFIERS)}{_adjective(rng, sentiment)}.")
    return f"{opening} {verb} {rng.choice(INTENSIFIERS)}{_adjective(rng, sentiment)}."


def _follow_up(rng: random.Random, sentiment: str) -> str:
    """A later sentence of a review: same sentiment, or neutral detail."""
    if sentiment != "neutral" and rng.random() < 0.3:
        sentiment_of_sentence = "neutral"
    else:
        sentiment_of_sentence = sentiment
    form = rng.randrange(5)
    if sentiment_of_sentence == "neutral":
        if form == 0:
            return f"I {rng.choice(NEUTRAL_VERB)} it {rng.choice(WHEN)} with {rng.choice(COMPANY)}."
        if form == 1:
            return f"It is set in {rng.choice(PLACES)}."
        if form == 2:
            return f"It runs {rng.choice(RUNTIMES)}."
        if form == 3:
            return rng.choice(NEUTRAL_CLOSERS)
        subject, plural = _subject(rng)
        return f"{subject.capitalize()} {('was', 'were')[plural]} {_adjective(rng, 'neutral')}."
    verbs = POSITIVE_VERB if sentiment_of_sentence == "positive" else NEGATIVE_VERB
    if form == 0:
        subject, _ = _subject(rng)
        return f"I {rng.choice(verbs)} {subject}."
    if form == 1:
        kind = rng.choice(KINDS)
        adjective = f"{rng.choice(ATTRIBUTIVE_INTENSIFIERS)}{_adjective(rng, sentiment_of_sentence)}"
        return f"It was {'an' if adjective[0] in 'aeiou' else 'a'} {adjective} {kind}."
    if form == 2:
        return rng.choice(POSITIVE_CLOSERS if sentiment_of_sentence == "positive" else NEGATIVE_CLOSERS)
    subject, plural = _subject(rng)
    other, other_plural = _subject(rng)
    if form == 3:
        return (f"{subject.capitalize()} {('was', 'were')[plural]} {_adjective(rng, sentiment_of_sentence)} and "
                f"{other} {('was', 'were')[other_plural]} {_adjective(rng, sentiment_of_sentence)}.")
    return f"{subject.capitalize()} {('was', 'were')[plural]} {rng.choice(INTENSIFIERS)}{_adjective(rng, sentiment_of_sentence)}."


def generate_corpus(n_docs: int, seed: int) -> list[str]:
    """`n_docs` short movie reviews (1-3 sentences, 8-34 words, 15 on average), a third each positive, negative
    and neutral, the same list for the same seed."""
    if n_docs < 1:
        raise ValueError(f"generate_corpus: n_docs={n_docs} must be >= 1.")
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sentiment = rng.choice(SENTIMENTS)
        sentences = [_first_sentence(rng, sentiment)]
        n_sentences = rng.choices((1, 2, 3), weights=(0.15, 0.45, 0.4))[0]
        while len(sentences) < n_sentences or sum(len(s.split()) for s in sentences) < 8:
            sentences.append(_follow_up(rng, sentiment))
        docs.append(" ".join(sentences))
    return docs


def make_prompts(n: int, seed: int) -> list[str]:
    """`n` prompts of 2-5 words ("The movie was", "I thought the acting"): openings of the corpus's reviews,
    which the corpus continues positively, negatively or neutrally alike."""
    if n < 1:
        raise ValueError(f"make_prompts: n={n} must be >= 1.")
    rng = random.Random(seed)
    prompts = []
    while len(prompts) < n:
        opening, plural, copula = _opening(rng)
        prompt = f"{opening} {copula[plural]}" if rng.random() < 0.5 else opening
        if 2 <= len(prompt.split()) <= 5:
            prompts.append(prompt)
    return prompts


def build_tokenizer(texts: list[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2's scheme) trained on `texts`, with `<|endoftext|>` as both bos and eos and a separate
    `<pad>`, so that padding is never mistaken for the end of a completion."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 2:
        raise ValueError(f"build_tokenizer: vocab_size={vocab_size} must be >= {len(alphabet) + 2} "
                         f"(the {len(alphabet)} bytes plus {EOS} and {PAD}).")
    tokenizer = Tokenizer(models.BPE())
    # add_prefix_space=False: a prompt "The movie was" is then tokenized as the same ids it has inside a review.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], initial_alphabet=alphabet,
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, pad_token=PAD)


def build_model(tokenizer: PreTrainedTokenizerFast, n_layer: int = 2, n_embd: int = 128, n_head: int = 4,
                n_positions: int = 128, seed: int = 0) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 over `tokenizer`'s vocabulary (about 0.5M parameters with the defaults)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if n_embd % n_head:
        raise ValueError(f"build_model: n_embd={n_embd} must be divisible by n_head={n_head}.")
    torch.manual_seed(seed)
    # Dropout 0: the corpus is far larger than the model can memorise in minutes, and RL code that calls
    # model.train() must not sample from a different (dropped-out) policy than the one it scores.
    # Exact GELU instead of GPT-2's tanh approximation: one fused kernel instead of five elementwise ops
    # (docs/performance.md has the figure).
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def _encode(tokenizer: PreTrainedTokenizerFast, docs: list[str], max_len: int) -> list[torch.Tensor]:
    """Each doc's ids followed by eos, cut to `max_len`. Docs are not packed: each starts at position 0 with no
    token before it, exactly as a prompt does at generation time."""
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    return [torch.tensor((doc + [tokenizer.eos_token_id])[:max_len]) for doc in ids]


def _batch(encoded: list[torch.Tensor], indices: list[int], pad_id: int) -> tuple[torch.Tensor, ...]:
    seqs = [encoded[i] for i in indices]
    input_ids = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=pad_id)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(s) for s in seqs], batch_first=True)
    labels = input_ids.masked_fill(mask == 0, -100)  # padding is not a target; the eos after each doc is
    return input_ids, mask, labels


def _length_bucketed(rng: random.Random, lengths: list[int], batch_size: int) -> list[list[int]]:
    """One epoch of batches, each drawn from docs of similar length, so little of each step is spent on padding
    to the longest doc of a random batch. Shuffled within chunks of 50 batches, so batches still vary in length."""
    order = rng.sample(range(len(lengths)), len(lengths))
    chunk = 50 * batch_size
    batches = []
    for begin in range(0, len(order), chunk):
        part = sorted(order[begin:begin + chunk], key=lengths.__getitem__)
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def pretrain(out: str | Path, minutes: float = 2.0, seed: int = 0, n_docs: int = 20_000, batch_size: int = 16,
             lr: float = 5e-3, epochs: float = 20.0, vocab_size: int = 512, n_prompts: int = 256,
             log: Callable[[str], None] = print, **model_kwargs: int) -> dict[str, str | int | float]:
    """Generate the corpus, train the tokenizer, and train a fresh `build_model(**model_kwargs)` on next-token
    prediction with AdamW until `minutes` of wall-clock time or `epochs` passes over the corpus, whichever comes
    first. Saves model and tokenizer (save_pretrained), `prompts.txt`, `corpus_sample.txt` and `pretrain.json`
    into `out`. Returns {"path", "steps", "loss", "initial_loss", "seconds", "params"}; "loss" is the mean
    training loss over the last 50 steps.

    Defaults: batch 16 at lr 5e-3 reached a lower loss than batch 32 at 2e-3 or 4e-3 for the same tokens when
    time was short (1.12 vs 1.5 after 3,200 docs) and the same (0.85) after 32,000; short is what a busy
    2-core machine gives. The loss levels off near 0.85 nats per token; samples read well below 1.0."""
    if minutes <= 0 or epochs <= 0:
        raise ValueError(f"pretrain: minutes={minutes} and epochs={epochs} must both be > 0.")
    if batch_size < 1:
        raise ValueError(f"pretrain: batch_size={batch_size} must be >= 1.")
    start = time.perf_counter()
    out = Path(out)
    docs = generate_corpus(n_docs, seed)
    tokenizer = build_tokenizer(docs, vocab_size=vocab_size)
    model = build_model(tokenizer, seed=seed, **model_kwargs)
    tokenizer.model_max_length = model.config.n_positions
    encoded = _encode(tokenizer, docs, model.config.n_positions)
    params = sum(p.numel() for p in model.parameters())
    log(f"pretrain: {n_docs} docs, vocab {len(tokenizer)}, {params / 1e6:.2f}M parameters, "
        f"up to {minutes:g} min or {epochs:g} epochs")

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = 20  # a short warm-up keeps Adam's first, poorly scaled steps from wrecking the fresh embeddings
    max_steps = max(1, math.ceil(epochs * n_docs / batch_size))
    generator = random.Random(seed)
    lengths = [len(e) for e in encoded]
    batches: list[list[int]] = []
    recent: list[float] = []
    initial_loss = math.nan
    step, last_log = 0, time.perf_counter()
    model.train()
    while step < max_steps and (step == 0 or time.perf_counter() - start < minutes * 60):  # at least one step
        if not batches:
            batches = _length_bucketed(generator, lengths, batch_size)
        input_ids, mask, labels = _batch(encoded, batches.pop(), tokenizer.pad_token_id)
        # Linear decay to a tenth over whichever budget (steps or minutes) runs out first: the last, small
        # steps clean up the rare tokens that make samples look garbled.
        progress = max(step / max_steps, (time.perf_counter() - start) / (minutes * 60))
        for group in optimizer.param_groups:
            group["lr"] = lr * min((step + 1) / warmup, 1.0 - 0.9 * min(progress, 1.0))
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        recent = (recent + [loss.item()])[-50:]  # one host sync per step is nothing next to a CPU backward pass
        if step == 1:
            initial_loss = recent[0]
        if time.perf_counter() - last_log >= 10:
            last_log = time.perf_counter()
            log(f"pretrain: step {step} loss {sum(recent) / len(recent):.3f} ({last_log - start:.0f} s)")
    model.eval()

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "prompts.txt").write_text("\n".join(make_prompts(n_prompts, seed)) + "\n")
    (out / "corpus_sample.txt").write_text("\n".join(docs[:300]) + "\n")
    result = {"path": str(out), "steps": step, "loss": sum(recent) / len(recent), "initial_loss": initial_loss,
              "seconds": time.perf_counter() - start, "params": params}
    (out / "pretrain.json").write_text(json.dumps({**result, "seed": seed, "n_docs": n_docs,
                                                   "batch_size": batch_size, "lr": lr}, indent=2) + "\n")
    log(f"pretrain: {step} steps, loss {initial_loss:.3f} -> {result['loss']:.3f}, saved to {out}")
    if result["loss"] > 1.2:
        log(f"pretrain: warning: loss {result['loss']:.2f} is well above where it levels off (about 0.85), so samples "
            f"will be garbled; only {step} steps fit in {minutes:g} min (a busy CPU?). Give more minutes, or "
            "torch.set_num_threads(1) if other jobs share the cores.")
    return result


@torch.no_grad()
def sample(model_dir: str | Path, prompts: list[str], max_new_tokens: int = 16, n: int | None = None,
           seed: int = 0) -> list[str]:
    """Completions (new text only) of `n` prompts (`prompts` repeated in order; all of them once if n is None),
    sampled from the model's full distribution (top_k=0, top_p=1, as TRL's sentiment example does)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not prompts:
        raise ValueError("sample: prompts is empty; pass at least one prompt.")
    n = len(prompts) if n is None else n
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(f"sample: the tokenizer in {model_dir} needs a pad token distinct from eos; "
                         "build it with agents.tiny_lm.build_tokenizer.")
    tokenizer.padding_side = "left"  # new tokens must follow each prompt directly
    batch = tokenizer([prompts[i % len(prompts)] for i in range(n)], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    torch.manual_seed(seed)
    output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, top_k=0, top_p=1.0,
                            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
