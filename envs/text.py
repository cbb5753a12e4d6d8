"""Language-model fine-tuning as a VecEnv: the observation is the text so far, the action is the next token.

``TextGenerationEnv`` holds N copies stepped in lockstep rounds of exactly ``max_new_tokens`` (T) steps.
Observations are int64 ``[N, 2, L]`` with ``L = P + T`` (P = ``prompt_len``): channel 0 holds token ids,
channel 1 the attention mask (1 = real token). Prompts are left-padded into columns ``[0, P)``; generated
token t goes to column ``P + t``; pad positions and columns not yet generated hold ``pad_token_id`` with
mask 0. A model reads it with ``position_ids(mask)`` so a left-padded prompt gets the positions it would
have alone.

Step semantics (round step t):

- Copies still generating ("active") write their action. A copy that emitted EOS earlier this round is
  idle: its action is ignored, its reward is 0, both flags are False, ``info["active"]`` is False.
- EOS (kept, mask 1) -> ``terminated``. At t = T-1 every active copy without EOS -> ``truncated``.
- The reward is the task reward (reward function, plus ``missing_eos_penalty`` if truncated, then
  normalised) at the step where the copy finished, 0 elsewhere, plus the optional dense
  ``token_reward`` on active steps.
- After step T-1 every copy restarts with a new prompt; ``info["final_obs"]`` holds the finished
  sequences (it equals ``obs`` on other steps) and ``info["texts"]`` the round's prompts, completions
  and raw reward-function scores (host lists, for logging).

Host syncs: rewards are scored on host strings, so each step reads one small tensor to learn whether any
copy finished (and whether an action was out of range); only then are the finished copies' tokens decoded
and scored, in one batched reward call.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from gymnasium import spaces

from envs.core import VecEnv
from envs.rewards import CombinedReward, RewardNormalizer, reward_from_spec, reward_name, validate_rewards, with_absolute_paths
from rlcore.config import check
from rlcore.lm import position_ids  # how a model reads these observations; re-exported for users of the env

__all__ = ["TextEnvConfig", "TextGenerationEnv", "load_prompts", "position_ids"]

PromptSource = Sequence[str] | str | Path | Callable[[int, np.random.Generator], list[str]]
CALLABLE_PROMPT_TOKENS = 64  # default P when prompts come from a function: there is no list to measure


@dataclass
class TextEnvConfig:
    """The Text-v0 settings a training run records (the tokenizer is the policy's model directory)."""

    prompts: str = ""
    """Prompts: a .txt (one per line), .jsonl or .csv file (their prompt_field); empty: the model directory's prompts.txt."""
    prompt_field: str = "prompt"
    """The field (.jsonl) or column (.csv) that holds each prompt."""
    reward: str = "vader"
    """Reward: vader, a reward-model directory rm:DIR, module:function, or a weighted sum (2*vader+0.5*rm:DIR)."""
    max_new_tokens: int = 16
    """Tokens generated per episode (n_steps must equal it: a rollout is one round of generation)."""
    group_size: int = 1
    """Completions sampled per prompt (>= 2 with advantage=group)."""
    missing_eos_penalty: float | None = None
    """Added to the reward of a completion cut at max_new_tokens without EOS (e.g. -1)."""
    reward_normalization: str = "none"
    """Episode rewards: none or running (scaled by the running mean and std of the rewards seen)."""

    def __post_init__(self) -> None:
        if self.prompts and Path(self.prompts).is_file():  # saved absolute: the run evaluates from any directory
            self.prompts = str(Path(self.prompts).resolve())
        self.reward = with_absolute_paths(self.reward)
        check(self, "max_new_tokens", self.max_new_tokens >= 1, ">= 1")
        check(self, "group_size", self.group_size >= 1, ">= 1")
        check(self, "reward_normalization", self.reward_normalization in ("none", "running"), "none or running")

    def env_kwargs(self) -> dict[str, Any]:
        """`TextGenerationEnv`'s keyword arguments for these settings (prompts and tokenizer resolved by the caller)."""
        return {"prompts": self.prompts, "prompt_field": self.prompt_field, "reward": self.reward,
                "max_new_tokens": self.max_new_tokens,
                "group_size": self.group_size, "missing_eos_penalty": self.missing_eos_penalty,
                "normalize": self.reward_normalization}


def read_jsonl(path: Path, expect: str) -> Iterator[tuple[str, Any]]:
    """("file:line", parsed value) for each non-blank line of a JSONL file; a line that is not JSON
    raises an error naming file and line and saying what each line must be (`expect`)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not valid JSON ({e.msg}); each line must be {expect}") from None
        yield f"{path}:{number}", record


def _field_of(record: Any, field: str, where: str) -> str:
    """`record[field]` as a prompt, or an error naming the row and the fields it has."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object with a string {field!r} field, got {json.dumps(record)[:80]}")
    if field not in record:
        raise ValueError(f"{where}: no field {field!r}; its fields are {', '.join(map(str, record)) or 'none'}: choose "
                         "one with --prompt-field (Python: prompt_field=...).")
    if not isinstance(record[field], str):
        raise ValueError(f"{where}: field {field!r} is {type(record[field]).__name__} {record[field]!r:.60}, not a string")
    return record[field]


PROMPT_FILES = (".txt", ".jsonl", ".csv")


def load_prompts(source: Sequence[str] | str | Path, field: str = "prompt") -> list[str]:
    """Prompts from a list, a ``.txt`` file (one per non-empty line), a ``.jsonl`` file (an object per line) or a
    ``.csv`` file with a header row; from the last two, the ``field`` of each row."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"prompt file {str(path)!r} does not exist: give a .txt (one prompt per line), "
                                    f".jsonl (one {{\"{field}\": ...}} object per line) or .csv file (a {field!r} "
                                    "column), or a list of strings")
        if path.suffix not in PROMPT_FILES:
            raise ValueError(f"prompt file {str(path)!r}: expected a .txt, .jsonl or .csv file, got {path.suffix!r}")
        if path.suffix == ".txt":
            prompts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif path.suffix == ".jsonl":
            prompts = [_field_of(record, field, where)
                       for where, record in read_jsonl(path, f'an object like {{"{field}": "..."}}')]
        else:
            with path.open(newline="", encoding="utf-8") as f:
                prompts = [_field_of(row, field, f"{path}:{number}") for number, row in enumerate(csv.DictReader(f), 2)]
        where = f"prompt file {str(path)!r}"
    else:
        prompts = list(source)
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise ValueError(f"prompt {i} is {type(p).__name__} {p!r:.60}, not a string")
        where = "the prompt list"
    if not prompts:
        raise ValueError(f"{where} holds no prompts: give at least one")
    return prompts


def _load_tokenizer(tokenizer: Any) -> Any:
    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        if not Path(tokenizer).is_dir():
            raise FileNotFoundError(f"tokenizer directory {str(tokenizer)!r} does not exist: give a local directory "
                                    "written by save_pretrained, or a tokenizer object")
        return AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    return tokenizer


class TextGenerationEnv(VecEnv):
    """N copies of "continue this prompt", one token per step, scored by a reward on the finished text.

    Args:
        prompts: a list of strings, a path to a .txt/.jsonl/.csv file (see ``load_prompts``; ``prompt_field``
            names the field or column of the last two), or a function
            ``fn(n, rng) -> n prompts`` given a seeded ``numpy.random.Generator``. Listed prompts are drawn
            in a seeded shuffled order, every prompt once before any repeats.
        tokenizer: a Hugging Face tokenizer, or a local directory to load one from. It needs an EOS token;
            without a pad token EOS pads (the mask tells padding from a generated EOS).
        reward: a reward function ``fn(prompts, completions)``, a list of ``(fn, weight)``, or a spec string
            for ``envs.rewards.reward_from_spec`` (e.g. ``"vader"``, ``"0.5*vader+1*rm:/path"``).
        max_new_tokens: T, the steps of one round (the most tokens a completion can have).
        num_envs: N, copies stepped together; a multiple of ``group_size``.
        group_size: g, copies ``[k*g, (k+1)*g)`` share one prompt (for group baselines).
        max_prompt_tokens: P; default the longest tokenized prompt (64 for a prompt function), capped at
            ``context_length - max_new_tokens``. A longer prompt keeps its last P tokens (with a warning).
        context_length: the model's context; default the tokenizer's ``model_max_length`` when it is a real
            limit (< 1e6), else unlimited.
        missing_eos_penalty: added to the reward of a completion truncated without EOS (usually negative).
        token_reward: optional dense reward ``fn(tokens [N] long, active [N] bool) -> [N]`` added on active steps.
        normalize: ``"none"`` or ``"running"`` (``RewardNormalizer``), applied to the rewards of the copies
            finishing at a step.
        seed: seeds the prompt order (and a prompt function's generator); ``reset(seed)`` reseeds it.
        device: where observations, rewards and flags live.
    """

    env_id = "Text-v0"

    def __init__(self, prompts: PromptSource, tokenizer: Any, reward: Any, max_new_tokens: int = 16, num_envs: int = 8,
                 prompt_field: str = "prompt",
                 group_size: int = 1, max_prompt_tokens: int | None = None, context_length: int | None = None,
                 missing_eos_penalty: float | None = None,
                 token_reward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 normalize: str = "none", seed: int | None = None, device: str | torch.device = "cpu"):
        for name, value in (("max_new_tokens", max_new_tokens), ("num_envs", num_envs), ("group_size", group_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if num_envs % group_size:
            raise ValueError(f"num_envs={num_envs} is not a multiple of group_size={group_size}: copies share prompts "
                             "in whole groups")
        self.num_envs, self.group_size, self.max_new_tokens = num_envs, group_size, max_new_tokens
        self.device = torch.device(device)
        self.tokenizer = _load_tokenizer(tokenizer)
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token: a completion could never end; set tokenizer.eos_token")
        self.eos_token_id = int(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = self.eos_token_id if pad is None else int(pad)
        bos = getattr(self.tokenizer, "bos_token_id", None)
        self._start_id = self.eos_token_id if bos is None else int(bos)  # stands in for a prompt with no tokens
        self.vocab_size = len(self.tokenizer)

        if isinstance(reward, str):
            reward = reward_from_spec(reward, device=self.device)
        elif isinstance(reward, (list, tuple)):
            reward = CombinedReward(list(reward))
        elif not callable(reward):
            raise ValueError(f"reward must be a function, a list of (function, weight) or a spec string, got {reward!r:.60}")
        self.reward, self.reward_name = reward, reward_name(reward)
        self.token_reward = token_reward
        self.missing_eos_penalty = missing_eos_penalty
        self.normalizer = RewardNormalizer(normalize)

        if context_length is None:
            limit = getattr(self.tokenizer, "model_max_length", None)
            context_length = limit if isinstance(limit, int) and limit < 1_000_000 else None
        room = None if context_length is None else context_length - max_new_tokens
        if room is not None and room < 1:
            raise ValueError(f"context_length={context_length} leaves no room for a prompt token next to "
                             f"max_new_tokens={max_new_tokens}: lower max_new_tokens")
        if callable(prompts):
            self._prompt_fn, self._texts, self._encoded = prompts, None, None
            longest = CALLABLE_PROMPT_TOKENS
        else:
            self._prompt_fn, self._texts = None, load_prompts(prompts, prompt_field)
            self._encoded = self._encode(self._texts)
            longest = max(len(ids) for ids in self._encoded)
        if max_prompt_tokens is None:
            max_prompt_tokens = longest if room is None else min(longest, room)
        elif isinstance(max_prompt_tokens, bool) or not isinstance(max_prompt_tokens, int) or max_prompt_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be an integer >= 1 or None, got {max_prompt_tokens!r}")
        elif room is not None and max_prompt_tokens > room:
            raise ValueError(f"max_prompt_tokens={max_prompt_tokens} + max_new_tokens={max_new_tokens} exceeds "
                             f"context_length={context_length}: lower one of them")
        self.prompt_len = max_prompt_tokens
        self._warned_cut = False
        if self._encoded is not None:
            self._encoded = self._cut(self._encoded)

        length = self.prompt_len + max_new_tokens
        self.single_observation_space = spaces.Box(0, self.vocab_size - 1, (2, length), np.int64)
        self.single_action_space = spaces.Discrete(self.vocab_size)
        self._rng = np.random.default_rng(seed)
        self._order: np.ndarray | None = None
        self._pos = 0
        self._round_start_state: dict[str, Any] | None = None
        self._obs: torch.Tensor | None = None
        self.round_step = 0

    # -- prompts ---------------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> list[list[int]]:
        ids = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [list(x) if len(x) else [self._start_id] for x in ids]

    def _decode(self, ids: list[list[int]]) -> list[str]:
        """Completion texts, special tokens dropped. A fast tokenizer's own backend decodes the lists as they
        are; transformers' batch_decode first walks every id through a type conversion, a large share of a
        round's scoring time on a CPU (docs/performance.md). Both give the same text where transformers adds no
        clean-up of its own (clean_up_tokenization_spaces, off for GPT-2's tokenizers)."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and not getattr(self.tokenizer, "clean_up_tokenization_spaces", True):
            return backend.decode_batch(ids, skip_special_tokens=True)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def _cut(self, encoded: list[list[int]]) -> list[list[int]]:
        """Keep the last P tokens of longer prompts (the end is what the completion continues); warn once."""
        p = self.prompt_len
        cut = sum(len(ids) > p for ids in encoded)
        if cut and not self._warned_cut:
            self._warned_cut = True
            warnings.warn(f"{cut} of {len(encoded)} prompts are longer than max_prompt_tokens={p} tokens; each keeps "
                          f"its last {p} tokens. Raise max_prompt_tokens (or context_length) to keep them whole.",
                          stacklevel=3)
        return [ids[-p:] for ids in encoded]

    def _order_state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state, "pos": self._pos,
                "order": None if self._order is None else self._order.tolist()}

    def _draw(self, k: int) -> tuple[list[str], list[list[int]]]:
        if self._prompt_fn is not None:
            texts = self._prompt_fn(k, self._rng)
            if not isinstance(texts, (list, tuple)) or len(texts) != k or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"prompt function {reward_name(self._prompt_fn)!r} must return a list of {k} strings "
                                 f"when called with n={k}, got {texts!r:.80}")
            return list(texts), self._cut(self._encode(list(texts)))
        picked: list[int] = []
        while len(picked) < k:
            if self._order is None or self._pos == len(self._order):
                self._order, self._pos = self._rng.permutation(len(self._texts)), 0
            take = min(k - len(picked), len(self._order) - self._pos)
            picked.extend(self._order[self._pos:self._pos + take].tolist())
            self._pos += take
        return [self._texts[i] for i in picked], [self._encoded[i] for i in picked]

    def _start_round(self) -> None:
        self._round_start_state = self._order_state()
        g, p = self.group_size, self.prompt_len
        texts, encoded = self._draw(self.num_envs // g)
        rows = [[self.pad_token_id] * (p - len(ids)) + ids for ids in encoded]
        masks = [[0] * (p - len(ids)) + [1] * len(ids) for ids in encoded]
        obs = torch.full((self.num_envs, 2, p + self.max_new_tokens), self.pad_token_id, dtype=torch.int64)
        obs[:, 1] = 0
        obs[:, 0, :p] = torch.tensor(rows, dtype=torch.int64).repeat_interleave(g, 0)
        obs[:, 1, :p] = torch.tensor(masks, dtype=torch.int64).repeat_interleave(g, 0)
        self._obs = obs.to(self.device)
        self._prompts = [t for t in texts for _ in range(g)]
        self._completions = [""] * self.num_envs
        self._scores = [0.0] * self.num_envs
        self._active = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self.round_step = 0

    # -- the VecEnv contract -----------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Start a round with new prompts; ``seed`` restarts the prompt order from that seed."""
        if seed is not None:
            self._rng, self._order, self._pos = np.random.default_rng(seed), None, 0
        self._start_round()
        return self._obs.clone(), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("TextGenerationEnv.step() called before reset()")
        action = torch.as_tensor(action, device=self.device).detach()
        if action.is_floating_point() or action.is_complex() or action.dtype == torch.bool or action.numel() != self.num_envs:
            raise ValueError(f"action must be {self.num_envs} integer token ids, got {action.dtype} of shape "
                             f"{tuple(action.shape)}")
        action = action.reshape(-1).long()
        t, col, n = self.round_step, self.prompt_len + self.round_step, self.num_envs
        active = self._active
        terminated = active & (action == self.eos_token_id)
        last = t == self.max_new_tokens - 1
        truncated = active & ~terminated if last else torch.zeros_like(active)
        finished = terminated | truncated
        bad = active & ((action < 0) | (action >= self.vocab_size))
        any_bad, any_finished = torch.stack((bad.any(), finished.any())).tolist()  # the step's one host sync
        if any_bad:
            raise ValueError(f"actions must be token ids in [0, {self.vocab_size}); got {action[bad].tolist()[:5]} "
                             f"for copies {bad.nonzero().flatten().tolist()[:5]}")
        self._obs[:, 0, col] = torch.where(active, action, self.pad_token_id)
        self._obs[:, 1, col] = active.long()
        reward = torch.zeros(n, dtype=torch.float32, device=self.device)
        if self.token_reward is not None:
            dense = torch.as_tensor(self.token_reward(action, active), device=self.device).float().reshape(n)
            reward += torch.where(active, dense, 0.0)
        if any_finished:
            reward += self._score(finished, terminated, t)
        self._active = active & ~terminated
        info: dict[str, Any] = {"active": active}
        if last:
            info["final_obs"] = self._obs  # the finished round's tensor; the next round gets a fresh one
            info["texts"] = {"prompts": self._prompts, "completions": self._completions, "rewards": self._scores}
            self._start_round()
            return self._obs.clone(), reward, terminated, truncated, info
        self.round_step += 1
        obs = self._obs.clone()
        info["final_obs"] = obs
        return obs, reward, terminated, truncated, info

    def _score(self, finished: torch.Tensor, terminated: torch.Tensor, t: int) -> torch.Tensor:
        """Task rewards ``[N]`` (on device) of the copies that finished at round step ``t``, 0 for the rest."""
        idx = finished.nonzero().flatten().cpu()
        ended_by_eos = terminated.cpu()[idx].tolist()
        p = self.prompt_len
        generated = self._obs[idx.to(self.device), 0, p:p + t + 1].cpu().tolist()
        # The copy was active through step t, so every column up to t is its own token; drop the EOS itself.
        generated = [ids[:-1] if eos else ids for ids, eos in zip(generated, ended_by_eos)]
        completions = self._decode(generated)
        prompts = [self._prompts[i] for i in idx.tolist()]
        raw = validate_rewards(self.reward_name, self.reward(prompts, completions), len(prompts), prompts)
        episode = raw.clone()
        if self.missing_eos_penalty is not None:
            episode += self.missing_eos_penalty * (~torch.tensor(ended_by_eos, dtype=torch.bool)).float()
        episode = self.normalizer(episode)
        for i, text, score in zip(idx.tolist(), completions, raw.tolist()):
            self._completions[i], self._scores[i] = text, score
        out = torch.zeros(self.num_envs, dtype=torch.float32)
        out[idx] = episode
        return out.to(self.device)

    # -- checkpoints ------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Prompt order as it was when the round in flight began, and the normaliser's statistics: after
        ``load_state_dict``, ``reset()`` restarts that round with the same prompts and continues from there."""
        order = self._round_start_state or self._order_state()
        return {"env_id": self.env_id, "prompt_order": order, "normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        order = state["prompt_order"]
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = order["rng"]
        self._order = None if order["order"] is None else np.asarray(order["order"], dtype=np.int64)
        self._pos = order["pos"]
        self.normalizer.load_state_dict(state["normalizer"])
