"""Reward model trained from human preference pairs (Bradley-Terry).

Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences", and Ouyang et al. 2022
(InstructGPT): a language model with a scalar head scores r(prompt + completion); the probability that
`chosen` beats `rejected` is sigmoid(r_chosen - r_rejected), so the loss is -log sigmoid(r_chosen - r_rejected).

The result is a plain Hugging Face directory: `AutoModelForSequenceClassification.from_pretrained(out)` and
`AutoTokenizer.from_pretrained(out)` score a text as `logits[:, 0]`, which is how the text environment loads it.

Where the score is read: the sequence-classification head of a causal LM (GPT-2 and kin) pools the
RIGHTMOST token that is not `pad_token_id`. Training scores through that same forward, so training and
scoring cannot disagree. A tokenizer without a pad token (GPT-2's) gets pad = eos; the pooled token is
then still the last real token, except that trailing EOS tokens of a text are skipped (a causal model's
hidden state there is unaffected by them, so "... good" and "... good<eos>" score the same). Positions are
0, 1, ... from the left edge whatever the attention mask says, so texts are padded on the RIGHT (the saved
tokenizer says so) and truncated on the LEFT, which keeps the completion that is being judged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from envs.text import read_jsonl
from rlcore.seeding import seed_everything

PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")


def load_preferences(path: str | Path) -> list[dict[str, str]]:
    """Preference pairs from a JSONL file: one object per line with string fields prompt, chosen, rejected.

    Blank lines are skipped. The text scored for a pair is prompt + chosen (resp. rejected), joined as is,
    so the separating space belongs in one of the fields.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preference file {path} does not exist: pass a JSONL file of "
                                "{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...} lines")
    pairs = [_check_pair(record, where) for where, record in
             read_jsonl(path, "one object with string fields prompt, chosen, rejected")]
    if not pairs:
        raise ValueError(f"{path} holds no preference pairs: write one JSON object per line with string fields "
                         "prompt, chosen, rejected")
    return pairs


def train_reward_model(base: str | Path, data: str | Path | list[dict[str, str]], out: str | Path, epochs: int = 1,
                       batch_size: int = 16, lr: float = 5e-5, max_length: int = 256, seed: int = 0,
                       device: str | torch.device = "cpu", eval_fraction: float = 0.1,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune the local model directory `base` with a fresh scalar head on preference pairs; save it to `out`.

    `data` is a JSONL path (see `load_preferences`) or a list of such records. An `eval_fraction` share of the
    pairs (at least one, when > 0) is held out, chosen by `seed`, to report pairwise accuracy: the share of
    held-out pairs whose chosen text scores strictly higher. Returns {"train_loss": mean loss of the last epoch,
    "eval_accuracy": float, or None when nothing is held out, "pairs": pairs loaded, "eval_pairs": held out,
    "path": out}.
    """
    base = Path(base)
    if not base.is_dir():
        raise FileNotFoundError(f"base model directory {base} does not exist: pass a local directory written by "
                                "save_pretrained (models are never downloaded)")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_length", max_length)):
        if not value >= 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1) (the share of pairs held out), got {eval_fraction}")
    if isinstance(data, (str, Path)):
        pairs = load_preferences(data)
    else:
        pairs = [_check_pair(record, f"data[{i}]") for i, record in enumerate(data)]
    if not pairs:
        raise ValueError("data holds no preference pairs: pass at least one {\"prompt\", \"chosen\", \"rejected\"} record")
    # At least one pair is held out when asked for, and at least one is always left to train on.
    n_eval = min(max(1, round(len(pairs) * eval_fraction)), len(pairs) - 1) if eval_fraction > 0 else 0

    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # slow import, only when training

    seed_everything(seed)  # the new head's initialisation and dropout
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"the tokenizer in {base} has neither a pad nor an eos token: set tokenizer.pad_token "
                             "and save it again")
        tokenizer.pad_token = tokenizer.eos_token  # see the module docstring for where the score is then read
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    # float32 whatever the checkpoint's dtype: AdamW on a half-precision head loses the small updates.
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, local_files_only=True,
                                                               dtype=torch.float32).to(device)
    model.config.pad_token_id = tokenizer.pad_token_id  # the head pools the last token that is not this id
    limit = getattr(model.config, "max_position_embeddings", None)
    max_length = min(max_length, limit) if limit else max_length  # longer inputs would index past the positions

    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    eval_pairs, train_pairs = [pairs[i] for i in order[:n_eval]], [pairs[i] for i in order[n_eval:]]
    log(f"reward model: {len(train_pairs)} training pairs, {n_eval} held out, base {base}")

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(seed + 1)
    train_loss, eval_accuracy = float("nan"), None
    for epoch in range(1, epochs + 1):
        model.train()
        total = torch.zeros((), device=device)  # summed on the device: one host sync per epoch, not per batch
        for indices in torch.randperm(len(train_pairs), generator=shuffle).split(batch_size):
            batch = [train_pairs[i] for i in indices.tolist()]
            chosen, rejected = _score_pairs(model, tokenizer, batch, max_length, device)
            loss = -F.logsigmoid(chosen - rejected).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
        train_loss = (total / len(train_pairs)).item()
        eval_accuracy = _pairwise_accuracy(model, tokenizer, eval_pairs, batch_size, max_length, device)
        accuracy_text = "n/a" if eval_accuracy is None else f"{eval_accuracy:.3f}"
        log(f"epoch {epoch}/{epochs}: train loss {train_loss:.4f}, eval accuracy {accuracy_text}")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    log(f"reward model saved to {out}")
    return {"train_loss": train_loss, "eval_accuracy": eval_accuracy, "pairs": len(pairs), "eval_pairs": n_eval,
            "path": str(out)}


def _check_pair(record: Any, where: str) -> dict[str, str]:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object with string fields prompt, chosen, rejected, "
                         f"got {type(record).__name__}")
    missing = [k for k in PREFERENCE_FIELDS if k not in record]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}; every pair needs prompt, chosen, rejected")
    wrong = [f"{k} ({type(record[k]).__name__})" for k in PREFERENCE_FIELDS if not isinstance(record[k], str)]
    if wrong:
        raise ValueError(f"{where}: field(s) {', '.join(wrong)} must be strings")
    return {k: record[k] for k in PREFERENCE_FIELDS}


def _score_pairs(model: Any, tokenizer: Any, pairs: list[dict[str, str]], max_length: int,
                 device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of prompt + chosen and prompt + rejected, in one forward pass over both."""
    texts = [p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs]
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    empty = (encoded["attention_mask"].sum(-1) == 0).nonzero().flatten().tolist()  # on the host, before the copy
    if empty:
        text = texts[empty[0]]
        raise ValueError(f"the text {text!r} (prompt + completion) tokenizes to nothing, so it has no token to score: "
                         "drop that pair or give it a non-empty prompt")
    scores = model(**encoded.to(device)).logits[:, 0]
    return scores[:len(pairs)], scores[len(pairs):]


@torch.no_grad()
def _pairwise_accuracy(model: Any, tokenizer: Any, pairs: list[dict[str, str]], batch_size: int, max_length: int,
                       device: str | torch.device) -> float | None:
    if not pairs:
        return None
    model.eval()
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(pairs), batch_size):
        chosen, rejected = _score_pairs(model, tokenizer, pairs[start:start + batch_size], max_length, device)
        correct += (chosen > rejected).sum()  # a tie counts as wrong: the model did not tell the two apart
    return correct.item() / len(pairs)
