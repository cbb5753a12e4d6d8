"""A Hugging Face causal language model as an actor-critic over a text environment.

The observation is the text environment's ``[N, 2, L]`` int64 tensor (``envs.text``): token ids
and attention mask, the prompt left-padded into the first ``P`` columns and generated token
``t`` in column ``P + t``. The action is the next token. The policy has the interface of
``rlcore.policies.ActorCritic`` (``act``, ``value``, ``evaluate_actions``, ``mode``,
``to_env``), so the same PPO trains it.

Two things differ from an MLP policy, both for speed:

- ``act`` keeps a KV cache across the steps of a round. The text environment steps all copies
  in lockstep rounds of ``max_new_tokens`` steps, so call ``t`` of a round feeds only the token
  sampled at call ``t - 1``; a host counter (no sync) says which call it is.
- ``evaluate_actions`` takes whole sequences, ``[B, T, 2, L]`` observations and ``[B, T]``
  actions (``sequence_level = True`` asks the rollout buffer for minibatches of whole
  episodes), and scores all ``T`` tokens in one forward pass over the last observation.

The reference model for the KL penalty is the base model with the LoRA adapter disabled when
``lora_r > 0`` (no second copy held), else a frozen copy kept outside this module's parameters
and state dict (it is rebuilt from the model directory, not saved in checkpoints).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from rlcore.config import check
from rlcore.distributions import Categorical
from rlcore.nets import has_hooks

CRITICS = ("head", "separate", "none")


@dataclass
class LMPolicyConfig:
    """The language-model policy: which model, its critic, how it samples, LoRA."""

    model: str = ""
    """Directory of a Hugging Face causal LM: the policy, its tokenizer and the KL reference."""
    critic: str = "head"
    """head (zero-initialised value head on the LM) or separate (a second copy of the model with its own head)."""
    temperature: float = 1.0
    """Sampling temperature (also in the log-probabilities the ratio uses)."""
    top_k: int = 0
    """Sample from the k most likely tokens (0: all)."""
    top_p: float = 1.0
    """Nucleus sampling mass (1: all)."""
    lora_r: int = 0
    """LoRA rank (peft); 0 trains every weight. With LoRA the reference is the base model, adapter disabled."""

    def __post_init__(self) -> None:
        if self.model and Path(self.model).is_dir():  # saved absolute: the run evaluates from any directory
            self.model = str(Path(self.model).resolve())
        check(self, "critic", self.critic in ("head", "separate"), "head or separate")
        check(self, "temperature", self.temperature > 0, "> 0")
        check(self, "top_k", self.top_k >= 0, ">= 0 (0: off)")
        check(self, "top_p", 0 < self.top_p <= 1, "in (0, 1]")
        check(self, "lora_r", self.lora_r >= 0, ">= 0")


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: the first real token is position 0."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def load_causal_lm(path: str | Path, dtype: torch.dtype | None = None) -> nn.Module:
    """A causal LM from a local directory (never the network), dropout off: RL needs the same
    log-probabilities at collection and in the update."""
    from transformers import AutoModelForCausalLM

    if not Path(path).is_dir():
        raise FileNotFoundError(f"Model directory {str(path)!r} does not exist: give --model the directory a Hugging "
                                "Face model was saved to (save_pretrained), e.g. the one `rl pretrain-lm` writes.")
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return fuse_gelu(model)


def fuse_gelu(model: nn.Module) -> nn.Module:
    """Swap transformers' NewGELUActivation (GPT-2's "gelu_new": five elementwise ops written in
    Python) for torch's fused tanh GELU, the same function; it halved a tiny GPT-2's forward on a CPU.
    Its GELUActivation ("gelu", a Python module around torch's GELU) becomes torch's module too."""
    from transformers.activations import GELUActivation, NewGELUActivation

    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(module, name, nn.GELU(approximate="tanh"))
            elif type(child) is GELUActivation and child.act is F.gelu:
                setattr(module, name, nn.GELU())
    return model


def _hidden_size(model: nn.Module) -> int:
    config = model.config
    return getattr(config, "hidden_size", None) or config.n_embd


def leading_pad_columns(prompt_mask: torch.Tensor) -> int:
    """How many leading columns are padding in every row: a batch whose longest prompt is shorter
    than the width skips them (positions come from the mask, so nothing else changes). One host
    read per call: per round or minibatch, never per token."""
    return int(prompt_mask.any(0).int().argmax())


def distinct_prompts(prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The distinct rows of ``[B, 2, P]`` prompts (ids and mask) and each row's index among them, or
    ``(prompts, None)`` when no two rows are equal. Completions sampled for the same prompt (a
    group) then share one pass over it. One host read: the number of distinct rows.

    The shared rows are repeated with ``index_select`` (caches: ``reorder_cache``, which uses it),
    never ``x[rows]``: on a multi-threaded CPU the backward of advanced indexing adds the repeated
    rows' gradients in a varying order, and a seeded run would stop being reproducible."""
    unique, inverse = torch.unique(prompts.flatten(1), dim=0, return_inverse=True)
    if unique.shape[0] == prompts.shape[0]:
        return prompts, None
    return unique.view(-1, *prompts.shape[1:]), inverse


class HFDecoder:
    """Incremental decoding through the model's own forward and KV cache: any causal LM."""

    def __init__(self, lm: nn.Module, cache_arg: str, keeps_logits: bool):
        self.lm, self.cache_arg, self.keeps_logits = lm, cache_arg, keeps_logits
        self.cache = None

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 keep: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [N, keep, V] and hidden states [N, keep, H] at the last `keep` of `ids`, the next
        columns; `mask` covers every column so far."""
        kwargs = {self.cache_arg: self.cache, "logits_to_keep": keep} if self.keeps_logits else {self.cache_arg: self.cache}
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                      output_hidden_states=True, **kwargs)
        self.cache = out.get(self.cache_arg)
        return out.logits[:, -keep:], out.hidden_states[-1][:, -keep:]

    def select(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) these rows of the cache: a prompt run once serves each of its completions."""
        self.cache.reorder_cache(rows)


class GPT2Decoder:
    """GPT-2's incremental decoding without transformers' per-call machinery (mask building, cache
    objects, output records), which for a small model on a CPU costs several times the arithmetic
    (docs/performance.md). The blocks' own modules do the work (so LoRA layers and disabled adapters apply);
    keys and values go into a cache preallocated for the round. The update's and the reference's
    passes run through it as well, with gradients where they are on (less Python per pass than
    transformers' forward). Plain layers (transformers' Conv1D, LayerNorm, GPT-2's MLP without
    dropout) run as their functional ops, the same ones their forward calls, without the module
    call around them; anything else, such as a LoRA layer,
    or any layer of a model with hooks, is called as itself. Tests hold it to the model's own
    forward pass, outputs and gradients.

    Decoding writes each token's keys and values into a cache preallocated for the round's
    `length` columns. A pass that records gradients (the update's) concatenates them instead: an
    in-place write into a cache makes autograd copy the cache's whole gradient at each write."""

    def __init__(self, lm: nn.Module, length: int):
        from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
        from transformers.pytorch_utils import Conv1D

        self.model = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        self._plain = not has_hooks(self.model)  # with hooks, every layer is called as a module so they run
        self._conv1d_type, self._mlp_type = Conv1D, GPT2MLP
        c = self.model.config
        self.heads, self.head_dim, self.length = c.n_head, c.n_embd // c.n_head, length
        self.keys: list[torch.Tensor] = []  # per layer [N, heads, columns, head_dim]: the cache, or the columns so far
        self.values: list[torch.Tensor] = []
        self.filled = 0  # columns of the cache written so far
        self._concatenate: bool | None = None  # decided at the first call: whether it records gradients

    @staticmethod
    def supports(lm: nn.Module) -> bool:
        model = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        c = model.config
        return (type(model).__name__ == "GPT2LMHeadModel" and not c.add_cross_attention and c.scale_attn_weights
                and not c.scale_attn_by_inverse_layer_idx and not c.reorder_and_upcast_attn)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 keep: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """As `HFDecoder`; differentiable (the update's passes use it too)."""
        body, n, start = self.model.transformer, ids.shape[1], self.filled
        end = start + n
        # Query i (column start + i) sees real keys up to itself, and always itself, so a padding
        # query attends to something and no row of the softmax is empty (that would be NaN).
        allowed = mask[:, None, :end].to(torch.bool, copy=True)  # [N, 1, end]
        if n == 1:  # a generated token: every earlier column is causal, two ops a step
            allowed[..., -1] = True
        else:
            causal = torch.ones(n, end, dtype=torch.bool, device=ids.device).tril(start)
            itself = torch.zeros_like(causal)
            itself[:, start:] = torch.eye(n, dtype=torch.bool, device=ids.device)
            allowed = (causal & allowed) | itself  # [N, n, end]
        h = body.wte(ids) + body.wpe(positions)
        if self._concatenate is None:
            self._concatenate = torch.is_grad_enabled()
        for layer, block in enumerate(body.h):
            q, k, v = self._linear(block.attn.c_attn, self._norm(block.ln_1, h)).split(self.heads * self.head_dim, dim=2)
            q, k, v = (x.view(x.shape[0], n, self.heads, self.head_dim).transpose(1, 2) for x in (q, k, v))
            k, v = self._cached(layer, k, v, start, end)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
            h = h + self._linear(block.attn.c_proj, a.transpose(1, 2).reshape(h.shape))
            h = h + self._mlp(block.mlp, self._norm(block.ln_2, h))
        self.filled = end
        hidden = self._norm(body.ln_f, h[:, -keep:])
        return self.model.lm_head(hidden), hidden

    def _cached(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of columns 0..end-1 of `layer`, given those of columns start..end-1."""
        if self._concatenate:
            if start:
                k, v = torch.cat((self.keys[layer], k), 2), torch.cat((self.values[layer], v), 2)
            if len(self.keys) == layer:
                self.keys.append(k)
                self.values.append(v)
            else:
                self.keys[layer], self.values[layer] = k, v
            return k, v
        if len(self.keys) == layer:
            self.keys.append(k.new_zeros(k.shape[0], self.heads, self.length, self.head_dim))
            self.values.append(torch.zeros_like(self.keys[-1]))
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def _linear(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self._plain or type(layer) is not self._conv1d_type:
            return layer(x)
        return torch.addmm(layer.bias, x.view(-1, x.shape[-1]), layer.weight).view(*x.shape[:-1], -1)  # Conv1D.forward

    def _norm(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self._plain or type(layer) is not nn.LayerNorm:
            return layer(x)
        return F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)

    def _mlp(self, mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self._plain or type(mlp) is not self._mlp_type or (mlp.training and mlp.dropout.p > 0):
            return mlp(x)
        return self._linear(mlp.c_proj, mlp.act(self._linear(mlp.c_fc, x)))  # GPT2MLP.forward, dropout off

    def select(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) these rows of the cache: a prompt run once serves each of its completions."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]


class LMActorCritic(nn.Module):
    """Policy: the LM's next-token distribution at ``temperature``, sampled with top-k / top-p
    (log-probabilities and the PPO ratio use the full tempered softmax, as TRL does, so a token
    outside the top-k still has a finite ratio after an update). Critic: a zero-initialised
    linear value head on the LM's last hidden state (``critic="head"``), on a separate copy of
    the model (``"separate"``), or none (``"none"``: for critic-free group baselines)."""

    sequence_level = True

    def __init__(self, lm: nn.Module, prompt_len: int, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, critic: str = "head", lora_r: int = 0):
        super().__init__()
        if critic not in CRITICS:
            raise ValueError(f"critic = {critic!r} is invalid: must be one of {', '.join(CRITICS)}.")
        if temperature <= 0 or top_k < 0 or not 0 < top_p <= 1:
            raise ValueError(f"Sampling settings temperature = {temperature}, top_k = {top_k}, top_p = {top_p} are "
                             "invalid: need temperature > 0, top_k >= 0 (0: off), 0 < top_p <= 1.")
        self.prompt_len, self.max_new_tokens = prompt_len, max_new_tokens
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.critic, self.lora = critic, lora_r > 0
        frozen = None
        if self.lora:
            from peft import LoraConfig, get_peft_model

            lm = get_peft_model(lm, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0,
                                               target_modules="all-linear", task_type="CAUSAL_LM"))
        else:
            frozen = copy.deepcopy(lm).requires_grad_(False).eval()
        self.lm = lm
        # transformers 5.2x calls the KV cache `cache`, earlier versions `past_key_values`.
        forward = inspect.signature(type(lm.get_base_model() if self.lora else lm).forward).parameters
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        self._keeps_logits = "logits_to_keep" in forward
        # A plain attribute, not a submodule: kept out of parameters(), state_dict() and checkpoints.
        object.__setattr__(self, "_reference", frozen)
        self.critic_lm = copy.deepcopy(lm) if critic == "separate" else None
        if critic != "none":
            self.value_head = nn.Linear(_hidden_size(lm), 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        self._t = 0  # calls of `act` in the current round
        self._decoders: list[HFDecoder | GPT2Decoder] = []  # the round's KV caches: policy, separate critic
        self._first = 0  # leading padding columns every prompt of the round has
        self._next_position: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, prompt_len: int, max_new_tokens: int, device: str | torch.device = "cpu",
                        **kwargs) -> "LMActorCritic":
        return cls(load_causal_lm(path), prompt_len, max_new_tokens, **kwargs).to(device)

    @classmethod
    def from_config(cls, config: LMPolicyConfig, prompt_len: int, max_new_tokens: int, device: str | torch.device,
                    critic: str | None = None) -> "LMActorCritic":
        """The policy `config` describes; `critic` overrides its critic ("none" for critic-free group baselines)."""
        return cls.from_pretrained(config.model, prompt_len, max_new_tokens, device=device,
                                   temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
                                   critic=critic or config.critic, lora_r=config.lora_r)

    def collector_copy(self) -> "LMActorCritic":
        """A copy to collect rounds with beside the update (async_rollout); the frozen reference is
        shared, not copied (it is read-only)."""
        return copy.deepcopy(self, {id(self._reference): self._reference} if self._reference is not None else {})

    def to(self, *args, **kwargs) -> "LMActorCritic":
        super().to(*args, **kwargs)
        if self._reference is not None:
            self._reference.to(*args, **kwargs)
        return self

    # ----- forward passes -------------------------------------------------------------------
    def _forward(self, lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncached: logits and last hidden states at every column of left-padded `ids`."""
        out = lm(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False,
                 output_hidden_states=True)
        return out.logits, out.hidden_states[-1]

    def _values(self, hidden: torch.Tensor, critic_hidden: torch.Tensor | None) -> torch.Tensor:
        if self.critic == "none":
            return hidden.new_zeros(hidden.shape[:-1], dtype=torch.float32)
        h = critic_hidden if critic_hidden is not None else hidden
        return self.value_head(h).squeeze(-1).float()

    def _dist(self, logits: torch.Tensor) -> Categorical:
        return Categorical(logits if self.temperature == 1.0 else logits.float() / self.temperature)

    def _sample(self, logits: torch.Tensor, dist: Categorical) -> torch.Tensor:
        """A token from `dist` (the tempered softmax of `logits`), or with top-k / top-p from its filtered copy."""
        if self.top_k == 0 and self.top_p == 1.0:
            return dist.sample()
        logits = logits.float() / self.temperature
        if self.top_k > 0:
            kth = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
            drop = probs.cumsum(-1) - probs >= self.top_p  # keep the smallest prefix whose mass reaches top_p
            logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
        return Categorical(logits).sample()

    def _state(self, obs: torch.Tensor, lm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncached: logits and hidden state at the last real token of each [N, 2, L] observation."""
        ids, mask = obs[:, 0], obs[:, 1]
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)
        logits, hidden = self._forward(lm, ids, mask)
        rows = torch.arange(ids.shape[0], device=ids.device)
        return logits[rows, last], hidden[rows, last]

    # ----- the ActorCritic interface ---------------------------------------------------------
    def _decoder(self, lm: nn.Module, length: int) -> HFDecoder | GPT2Decoder:
        if GPT2Decoder.supports(lm):
            return GPT2Decoder(lm, length)
        return HFDecoder(lm, self._cache_arg, self._keeps_logits)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample the next token of every copy. Call 0 of a round runs the prompts and caches their
        keys and values; call t feeds only generated token t - 1 (column P + t - 1)."""
        P, t = self.prompt_len, self._t
        ids, mask = obs[:, 0], obs[:, 1]
        if t == 0:  # each distinct prompt runs once; its cache and outputs are then repeated for its completions
            self._first = first = leading_pad_columns(mask[:, :P])
            prompts, rows = distinct_prompts(obs[:, :, first:P])
            length = P + self.max_new_tokens - first
            self._decoders = [self._decoder(lm, length) for lm in (self.lm, self.critic_lm)
                              if lm is not None]
            new_ids, seen = prompts[:, 0], prompts[:, 1]
            positions = position_ids(seen)
            outputs = [decoder(new_ids, seen, positions) for decoder in self._decoders]
            if rows is not None:
                for decoder in self._decoders:
                    decoder.select(rows)
                outputs = [(logits.index_select(0, rows), hidden.index_select(0, rows)) for logits, hidden in outputs]
                positions = positions.index_select(0, rows)
            self._next_position = positions[:, -1:] + 1
        else:
            new_ids, seen = ids[:, P + t - 1:P + t], mask[:, self._first:P + t]
            positions = self._next_position
            self._next_position = positions + 1
            outputs = [decoder(new_ids, seen, positions) for decoder in self._decoders]
        (logits, hidden), critic_hidden = outputs[0], (outputs[1][1] if len(outputs) > 1 else None)
        logits, hidden = logits[:, -1], hidden[:, -1]  # the decoders return [N, 1, ...]: the last column
        critic_hidden = critic_hidden[:, -1] if critic_hidden is not None else None
        self._t = (t + 1) % self.max_new_tokens
        dist = self._dist(logits)
        action = self._sample(logits, dist)
        return action, dist.log_prob(action), self._values(hidden, critic_hidden)

    def reset_cache(self) -> None:
        """Forget the round in progress: the next `act` starts from a prompt."""
        self._t, self._decoders = 0, []

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V of [N, 2, L] observations; 0 where the token budget is used up (nothing can follow)."""
        if self.critic == "none":
            return torch.zeros(obs.shape[0], device=obs.device)
        lm = self.critic_lm if self.critic_lm is not None else self.lm
        _, hidden = self._state(obs, lm)
        exhausted = obs[:, 1, -1] == 1
        return torch.where(exhausted, 0.0, self.value_head(hidden).squeeze(-1).float())

    def distribution(self, obs: torch.Tensor) -> Categorical:
        logits, _ = self._state(obs, self.lm)
        return self._dist(logits)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.distribution(obs).mode()

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return action

    def _sequence_outputs(self, obs: torch.Tensor, lm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and hidden states predicting generated tokens 0..T-1 of [B, T, 2, L] episodes,
        from one forward pass over the last step's observation (it holds tokens 0..T-2).

        Completions of the same prompt share the pass over it: each distinct prompt runs once
        (giving the logits of token 0 and the keys and values), its cache is repeated for each of
        its completions, and the completions' tokens run over it. The logits and gradients are
        those of one pass per row; with 8 completions per prompt it skips 7/8 of the prompt's work.
        The passes run through the decoder acting uses (``GPT2Decoder`` where it fits)."""
        P, T = self.prompt_len, obs.shape[1]
        last = obs[:, -1]
        first = leading_pad_columns(last[:, 1, :P])
        ids, mask = last[:, 0, first:P + T - 1], last[:, 1, first:P + T - 1]
        prompts, rows = distinct_prompts(last[:, :, first:P])
        head = self._decoder(lm, ids.shape[1])  # as in acting: GPT-2's lean pass where it fits
        if rows is None:
            return head(ids, mask, position_ids(mask), keep=T)
        logits, hidden = head(prompts[:, 0], prompts[:, 1], position_ids(prompts[:, 1]))
        logits, hidden = logits.index_select(0, rows), hidden.index_select(0, rows)
        if T == 1:
            return logits, hidden
        head.select(rows)
        n = P - first
        tail_logits, tail_hidden = head(ids[:, n:], mask, position_ids(mask)[:, n:], keep=T - 1)
        return torch.cat((logits, tail_logits), 1), torch.cat((hidden, tail_hidden), 1)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probability, entropy, value), each [B, T], of whole episodes [B, T, 2, L] / [B, T]."""
        if obs.dim() != 4:
            raise ValueError(f"LMActorCritic.evaluate_actions takes whole episodes, observations [B, T, 2, L]; got "
                             f"{tuple(obs.shape)}. Use the rollout buffer's minibatches(..., sequences=True).")
        logits, hidden = self._sequence_outputs(obs, self.lm)
        critic_hidden = self._sequence_outputs(obs, self.critic_lm)[1] if self.critic_lm is not None else None
        dist = self._dist(logits)
        return dist.log_prob(actions), dist.entropy(), self._values(hidden, critic_hidden)

    @torch.no_grad()
    def reference_logprobs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [B, T] of the actions under the frozen reference model (same temperature)."""
        if self.lora:
            with self.lm.disable_adapter():
                logits, _ = self._sequence_outputs(obs, self.lm)
        else:
            logits, _ = self._sequence_outputs(obs, self._reference)
        return self._dist(logits).log_prob(actions)
