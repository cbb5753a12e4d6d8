"""Rewards on strings for the text environment, scored a batch at a time.

A reward function is ``fn(prompts: list[str], completions: list[str]) -> sequence of real numbers``
(one per pair; Python, numpy or torch scalars, or a 1-D tensor/array). ``validate_rewards`` turns
what it returns into a float32 tensor, or raises an error naming the function and the sample.
``reward_from_spec`` builds a weighted sum from a string such as ``"0.5*vader+1*rm:/path/to/rm"``.
"""

from __future__ import annotations

import importlib
import math
import numbers
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rlcore.running_stats import RunningMeanStd

__all__ = ["CombinedReward", "HFRewardModel", "RewardFn", "RewardNormalizer", "reward_from_spec", "reward_name",
           "validate_rewards", "vader_reward"]

RewardFn = Callable[[list[str], list[str]], Any]

SPEC_FORMS = ('"vader" (VADER sentiment of the completion), "rm:/path/to/reward_model_dir" (a local Hugging Face '
              'sequence-classification model), "package.module:function" (your own reward function); each optionally '
              'weighted as "WEIGHT*TERM", terms joined with "+", e.g. "0.5*vader+1.0*rm:/models/rm"')
_FIX = "a reward function must return one finite real number per (prompt, completion) pair"


def reward_name(fn: Any) -> str:
    """The name errors and logs use for a reward function."""
    return str(getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__)


def validate_rewards(fn_name: str, values: Any, n: int, prompts: Sequence[str] | None = None) -> torch.Tensor:
    """``values`` as a float32 CPU tensor ``[n]``; ValueError naming ``fn_name`` and the sample if it is not
    ``n`` finite real numbers (``prompts``, when given, are quoted in the message)."""
    def where(i: int) -> str:
        return f"sample {i}" + (f" (prompt {prompts[i][:60]!r})" if prompts is not None and i < len(prompts) else "")

    if isinstance(values, (torch.Tensor, np.ndarray)):
        if values.ndim != 1:
            raise ValueError(f"reward function {fn_name!r} returned an array of shape {tuple(values.shape)} for {n} "
                             f"samples, expected shape ({n},): {_FIX}")
        real = values.dtype.is_floating_point if isinstance(values, torch.Tensor) else values.dtype.kind == "f"
        if real and len(values) == n:  # checked whole; the loop below then names the first bad sample, if any
            out = torch.as_tensor(values).detach().to("cpu", torch.float32, copy=True)
            if bool(torch.isfinite(out).all()):
                return out
        values = values.tolist()
    try:
        count = len(values)
    except TypeError:
        raise ValueError(f"reward function {fn_name!r} returned {type(values).__name__} {values!r:.60}, not a sequence "
                         f"of {n} numbers: {_FIX}") from None
    if count != n:
        raise ValueError(f"reward function {fn_name!r} returned {count} values for {n} samples: {_FIX}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim == 0:
            v = v.item()
        if not isinstance(v, numbers.Real):
            raise ValueError(f"reward function {fn_name!r} returned {type(v).__name__} {v!r:.60} for {where(i)}, "
                             f"not a real number: {_FIX}")
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"reward function {fn_name!r} returned {v} for {where(i)}: {_FIX}")
        out.append(v)
    return torch.tensor(out, dtype=torch.float32)


_VADER = None


def vader_reward(prompts: list[str], completions: list[str]) -> list[float]:
    """VADER's compound sentiment (-1 most negative .. +1 most positive) of each completion."""
    global _VADER
    if _VADER is None:  # built once, on first use: loading the lexicon takes a moment
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:
            raise ImportError('the "vader" reward needs vaderSentiment: pip install -e ".[lm]"') from e
        _VADER = SentimentIntensityAnalyzer()
    return [_VADER.polarity_scores(c)["compound"] for c in completions]


class HFRewardModel:
    """A Hugging Face sequence-classification model as a reward function: ``logits[:, 0]`` of prompt + completion.

    It loads, from a local directory only, its own tokenizer, which may differ from the policy's. Texts longer
    than ``max_length`` tokens keep their end (left truncation): the completion is what is being judged.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 64,
                 max_length: int = 512):
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"reward model directory {str(path)!r} does not exist: give a local directory "
                                    "written by save_pretrained (model and tokenizer)")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = f"rm:{path}"
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).to(self.device)
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            if self.tokenizer.eos_token_id is None:
                raise ValueError(f"the tokenizer of reward model {str(path)!r} has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # The model finds each text's last token by looking for the pad id, so it must know it.
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = min(max_length, positions) if isinstance(positions, int) else max_length

    @torch.no_grad()
    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        texts = [p + c for p, c in zip(prompts, completions)]
        scores = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt", padding=True, truncation=True,
                                   max_length=self.max_length).to(self.device)
            scores.append(self.model(**batch).logits[:, 0].float().cpu())
        return torch.cat(scores) if scores else torch.zeros(0)


class CombinedReward:
    """``sum(weight * fn(prompts, completions))`` over ``terms``, each term validated under its own name."""

    def __init__(self, terms: Sequence[tuple[RewardFn, float]]):
        if not terms:
            raise ValueError(f"CombinedReward needs at least one (function, weight) term; valid spec forms: {SPEC_FORMS}")
        for term in terms:
            if not (isinstance(term, tuple) and len(term) == 2 and callable(term[0])
                    and isinstance(term[1], numbers.Real) and math.isfinite(term[1])):
                raise ValueError(f"CombinedReward term {term!r} is not a (callable, finite weight) pair")
        self.terms = [(fn, float(w)) for fn, w in terms]
        self.name = "+".join(reward_name(fn) if w == 1.0 else f"{w:g}*{reward_name(fn)}" for fn, w in self.terms)

    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        total = torch.zeros(len(completions))
        for fn, w in self.terms:
            total += w * validate_rewards(reward_name(fn), fn(prompts, completions), len(completions), prompts)
        return total


def _term_from_spec(name: str, device: str | torch.device) -> RewardFn:
    if name == "vader":
        return vader_reward
    if name.startswith("rm:"):
        return HFRewardModel(name[3:], device=device)
    module, sep, attr = name.partition(":")
    if sep and module and attr.isidentifier():
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"reward {name!r}: cannot import {attr!r} from module {module!r} ({e})") from e
        if not callable(fn):
            raise ValueError(f"reward {name!r}: {module}.{attr} is not callable")
        return fn
    raise ValueError(f"unknown reward {name!r}; valid forms: {SPEC_FORMS}")


def code_terms(spec: str) -> list[str]:
    """The `module:function` terms of a reward spec: code that building the reward imports and runs."""
    names = [term.partition("*")[2] if "*" in term else term for term in spec.split("+")]
    return [n.strip() for n in names if ":" in n and not n.strip().startswith("rm:")]


def with_absolute_paths(spec: str) -> str:
    """The spec with each existing `rm:DIR` made absolute, so a run recorded with it evaluates from any directory."""
    def absolute(term: str) -> str:
        weight, star, name = term.partition("*") if "*" in term else ("", "", term)
        stripped = name.strip()
        if stripped.startswith("rm:") and Path(stripped[3:]).is_dir():
            name = f"rm:{Path(stripped[3:]).resolve()}"
        return f"{weight}{star}{name}"

    return "+".join(absolute(term) for term in spec.split("+"))


def reward_from_spec(spec: str, device: str | torch.device = "cpu") -> CombinedReward:
    """Parse e.g. ``"vader"``, ``"2*vader"``, ``"0.5*vader+1.0*rm:/path/to/rm"``, ``"mypkg.mod:fn"``."""
    terms = []
    for term in spec.split("+"):
        weight, _, name = term.partition("*") if "*" in term else ("1", "", term)
        try:
            w = float(weight)
        except ValueError:
            raise ValueError(f"reward spec {spec!r}: weight {weight!r} is not a number; valid forms: {SPEC_FORMS}") from None
        if not name.strip():
            raise ValueError(f"reward spec {spec!r} has an empty term; valid forms: {SPEC_FORMS}")
        terms.append((_term_from_spec(name.strip(), device), w))
    return CombinedReward(terms)


class RewardNormalizer:
    """Normalises episode rewards: ``"none"`` or ``"running"`` (subtract the running mean and divide by
    the running std of every reward seen, Chan et al.'s parallel update). No per-batch whitening: the
    environment scores the copies that finish at each step, often one or two, too few to whiten."""

    MODES = ("none", "running")

    def __init__(self, mode: str = "none", epsilon: float = 1e-8):
        if mode not in self.MODES:
            raise ValueError(f"reward normalisation {mode!r} is unknown; choose one of {', '.join(self.MODES)}")
        self.mode = mode
        self.epsilon = epsilon
        self.stats = RunningMeanStd(())

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        if self.mode == "none" or rewards.numel() == 0:
            return rewards
        x = rewards.double()
        self.stats.update(x)
        mean, std = self.stats.mean, self.stats.var.sqrt()
        return ((x - mean) / (std + self.epsilon)).to(rewards.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state["stats"])
