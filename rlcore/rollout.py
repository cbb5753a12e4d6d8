"""On-policy rollouts: generalised advantage estimation and the rollout buffer.

Data is time-major, ``[T, N, ...]`` (T steps of N parallel envs), preallocated on one
device. Observations are stored with whatever shape and dtype they come in (float vectors,
uint8 frames, int64 token ids), so the same buffer serves an MLP on CartPole and a
language model whose observations are padded token sequences.

Conventions (shared with ``envs.core``): step ``t`` of env ``n`` saw ``obs[t, n]``, took
``actions[t, n]``, got ``rewards[t, n]`` and led to the observation ``s'`` that the VecEnv
returned as ``info["final_obs"][n]`` -- the true last observation where the episode ended,
the next step's observation otherwise. ``terminated`` and ``truncated`` stay separate: a
termination has no future (V(s') = 0); a truncation (time limit) cuts the episode short but
s' still has a value, so it is bootstrapped from V(s').
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from envs.core import VecEnv


def _gae_dtype(*tensors: Tensor) -> torch.dtype:
    # float64 inputs (tests, references) stay exact; anything else (float32 values, bf16 from a
    # mixed-precision critic) accumulates in float32, since the recursion sums T terms.
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    final_values: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) with truncation bootstrapping.

    Every input is ``[T, N]``; ``terminated``/``truncated`` are bool. ``values[t] = V(s_t)``
    and ``final_values[t] = V(s')`` for the observation ``s'`` that step ``t`` led to: the true
    final observation where the episode ended (``info["final_obs"]``), so it equals
    ``values[t + 1]`` on steps that did not end an episode, and for ``t = T - 1`` it is the
    bootstrap value of the observation after the rollout. Then::

        delta_t = r_t + gamma * (1 - terminated_t) * final_values[t] - values[t]
        A_t     = delta_t + gamma * lam * (1 - (terminated_t | truncated_t)) * A_{t+1}
        returns = A + values

    A truncation therefore bootstraps from V(final obs) and stops the trace (the next row is
    another episode); a termination does neither. CleanRL, PureJaxRL and PufferLib merge the
    two flags into one ``done``, which treats a time limit as death (no bootstrap) or, where
    they bootstrap, uses the value of the reset observation of the next episode; SB3 fixed
    this in its issue #633. Here they are never merged.

    Returns ``(advantages, returns)``, ``[T, N]`` float32 (float64 if any input is float64).
    """
    shape = tuple(rewards.shape)
    if len(shape) != 2:
        raise ValueError(f"compute_gae: rewards must be [T, N], got shape {shape}.")
    for name, x in (("values", values), ("terminated", terminated), ("truncated", truncated),
                    ("final_values", final_values)):
        if tuple(x.shape) != shape:
            raise ValueError(f"compute_gae: {name} has shape {tuple(x.shape)}, expected {shape} like rewards.")
    if terminated.dtype != torch.bool or truncated.dtype != torch.bool:
        raise ValueError(f"compute_gae: terminated and truncated must be bool, got {terminated.dtype} "
                         f"and {truncated.dtype}.")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"compute_gae: gamma = {gamma!r} is invalid: must be in [0, 1].")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"compute_gae: lam = {lam!r} is invalid: must be in [0, 1].")

    dtype = _gae_dtype(rewards, values, final_values)
    values = values.to(dtype)
    not_terminated = (~terminated).to(dtype)
    # The trace continues only into a step of the same episode.
    trace = gamma * lam * (~(terminated | truncated)).to(dtype)
    # All TD errors at once; only the accumulation below is sequential.
    deltas = rewards.to(dtype) + gamma * not_terminated * final_values.to(dtype) - values
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(shape[0] - 1, -1, -1):
        running = deltas[t] + trace[t] * running
        advantages[t] = running
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """Mean of `x` over the entries where `mask` is True (along `dim`, or over all); 0 where none are True."""
    mask = mask.to(torch.bool)
    # masked_fill rather than x * mask: a NaN or inf at a masked-out position must not leak into the mean.
    total = x.masked_fill(~mask, 0).sum() if dim is None else x.masked_fill(~mask, 0).sum(dim)
    count = mask.sum() if dim is None else mask.sum(dim)
    return total / count.clamp(min=1)


def normalize_advantages(advantages: Tensor, mask: Tensor | None = None, eps: float = 1e-8,
                         dim: int | None = None) -> Tensor:
    """``(A - mean) / (std + eps)`` over all elements, or along ``dim`` (each slice on its own: one
    per seed when several train at once); over the ``mask``ed elements only when a mask is given.

    ``mask`` (bool, same shape) marks real entries, e.g. the generated tokens of padded
    language-model sequences: padding neither shifts the statistics nor receives a value
    (it is set to 0, so it adds nothing to a policy-gradient loss). The std uses Bessel's
    correction like CleanRL's and SB3's ``.std()``; a single element normalises to 0, not NaN.
    Statistics stay on the device: no host sync.
    """
    dims = () if dim is None else (dim,)
    if mask is None:
        count = advantages.numel() if dim is None else advantages.shape[dim]
        mean = advantages.mean(dims, keepdim=True)
        var = (advantages - mean).square().sum(dims, keepdim=True) / max(count - 1, 1)
        return (advantages - mean) / (var.sqrt() + eps)
    if tuple(mask.shape) != tuple(advantages.shape) or mask.dtype != torch.bool:
        raise ValueError(f"normalize_advantages: mask must be bool with the advantages' shape "
                         f"{tuple(advantages.shape)}, got {mask.dtype} {tuple(mask.shape)}.")
    weight = mask.to(advantages.dtype)
    count = weight.sum(dims, keepdim=True)
    mean = (advantages * weight).sum(dims, keepdim=True) / count.clamp(min=1)
    var = ((advantages - mean).square() * weight).sum(dims, keepdim=True) / (count - 1).clamp(min=1)
    return torch.where(mask, (advantages - mean) / (var.sqrt() + eps), 0.0)


def group_advantages(returns: Tensor, group_size: int) -> Tensor:
    """Critic-free baseline over groups of episodes that share a prompt (RLOO, Ahmadian et al.
    2024): each episode's return minus the mean return of the other ``group_size - 1`` episodes
    of its group. ``returns`` is ``[N]`` with groups consecutive (``N % group_size == 0``); the
    leave-one-out mean keeps the estimate unbiased, where GRPO's group mean includes the episode itself.
    """
    n = returns.shape[0]
    if not (isinstance(group_size, int) and group_size >= 2 and n % group_size == 0):
        raise ValueError(f"group_advantages: group_size = {group_size!r} must be an int >= 2 dividing the "
                         f"{n} episodes.")
    groups = returns.view(-1, group_size)
    others = (groups.sum(1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).view(n)


class RolloutBatch(NamedTuple):
    """A minibatch of flattened transitions; every field has leading dimension B, on the buffer's device."""

    obs: Tensor
    """[B, *obs_shape], stored dtype."""
    actions: Tensor
    """[B, *action_shape], stored dtype."""
    logprobs: Tensor
    """[B] float32, log-probability of the action under the policy that collected it."""
    values: Tensor
    """[B] float32, V(s) at collection time (for value clipping)."""
    advantages: Tensor
    """[B] float32, GAE advantages (not normalised: the agent decides whether and over what)."""
    returns: Tensor
    """[B] float32, advantages + values: the value target."""
    mask: Tensor | None = None
    """[B] bool, True for real transitions; None when every one is (padding exists only in text episodes)."""
    ref_logprobs: Tensor | None = None
    """[B] float32, the reference model's log-probability of the action (a KL penalty in the loss)."""


class RolloutBuffer:
    """T steps of N envs for one policy-gradient update, preallocated on ``device``.

    Per iteration: ``reset()``; ``add(...)`` once per env step (keyword arguments, so a
    swapped reward and value cannot go unnoticed); ``compute_returns_and_advantages(...)``;
    then ``minibatches(...)`` once per epoch. Fields are public ``[T, N, ...]`` tensors:
    ``obs``, ``actions``, ``logprobs``, ``rewards``, ``values``, ``terminated``,
    ``truncated``, ``final_values``, ``advantages``, ``returns`` (the scalars float32).

    Nothing reads a tensor value on the host: positions are Python ints and shapes are metadata.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: torch.dtype,
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        device: torch.device | str = "cpu",
    ) -> None:
        name = type(self).__name__
        for field, value in (("num_steps", num_steps), ("num_envs", num_envs)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name}.{field} = {value!r} is invalid: must be an int >= 1.")
        if not all(isinstance(d, int) and d >= 1 for d in obs_shape):
            raise ValueError(f"{name}.obs_shape = {obs_shape!r} is invalid: must be a tuple of ints >= 1.")
        if not all(isinstance(d, int) and d >= 1 for d in action_shape):
            raise ValueError(f"{name}.action_shape = {action_shape!r} is invalid: must be a tuple of ints >= 1 "
                             "(() for discrete actions).")
        for field, value in (("obs_dtype", obs_dtype), ("action_dtype", action_dtype)):
            if not isinstance(value, torch.dtype):
                raise ValueError(f"{name}.{field} = {value!r} is invalid: must be a torch.dtype.")

        self.num_steps, self.num_envs = num_steps, num_envs
        self.obs_shape, self.action_shape = tuple(obs_shape), tuple(action_shape)
        self.device = torch.device(device)
        T, N, dev = num_steps, num_envs, self.device
        # Every slot is written by `add` before it is read, so the big tensors need no zero fill.
        self.obs = torch.empty((T, N, *obs_shape), dtype=obs_dtype, device=dev)
        self.actions = torch.empty((T, N, *action_shape), dtype=action_dtype, device=dev)
        self.logprobs = torch.zeros((T, N), dtype=torch.float32, device=dev)
        self.rewards = torch.zeros((T, N), dtype=torch.float32, device=dev)
        self.values = torch.zeros((T, N), dtype=torch.float32, device=dev)
        self.terminated = torch.zeros((T, N), dtype=torch.bool, device=dev)
        self.truncated = torch.zeros((T, N), dtype=torch.bool, device=dev)
        self.final_values = torch.zeros((T, N), dtype=torch.float32, device=dev)
        self.advantages = torch.zeros((T, N), dtype=torch.float32, device=dev)
        self.returns = torch.zeros((T, N), dtype=torch.float32, device=dev)
        # Text episodes only: which steps are real (a copy idles after EOS until its round ends),
        # and the reference model's log-probabilities when the KL penalty goes into the loss.
        self.valid = torch.ones((T, N), dtype=torch.bool, device=dev)
        self.ref_logprobs = torch.zeros((T, N), dtype=torch.float32, device=dev)
        self.has_mask = False
        self.has_ref_logprobs = False
        self._pos = 0  # next step to write
        self._computed = False  # advantages/returns match the stored steps

    _TENSORS = ("obs", "actions", "logprobs", "rewards", "values", "terminated", "truncated", "final_values",
                "advantages", "returns", "valid", "ref_logprobs")

    def state_dict(self) -> dict[str, Any]:
        """The stored rollout (a rollout collected but not yet trained on goes into a checkpoint)."""
        return {**{name: getattr(self, name).clone() for name in self._TENSORS}, **self.flags()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._TENSORS:
            self._check_shape(name, state[name], tuple(getattr(self, name).shape))
            getattr(self, name).copy_(state[name])
        self.set_flags(state)

    def flags(self) -> dict[str, Any]:
        """What the buffer holds besides its tensors: with the tensors in shared memory, what another process needs to read it."""
        return {"pos": self._pos, "computed": self._computed, "has_mask": self.has_mask,
                "has_ref_logprobs": self.has_ref_logprobs}

    def set_flags(self, flags: dict[str, Any]) -> None:
        self._pos, self._computed = int(flags["pos"]), bool(flags["computed"])
        self.has_mask, self.has_ref_logprobs = bool(flags["has_mask"]), bool(flags["has_ref_logprobs"])

    def tensors(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._TENSORS]

    def __len__(self) -> int:
        """Transitions stored so far (``steps * num_envs``)."""
        return self._pos * self.num_envs

    @property
    def full(self) -> bool:
        return self._pos == self.num_steps

    def reset(self) -> None:
        """Start a new rollout; the storage is reused, not cleared."""
        self._pos = 0
        self._computed = False
        self.has_mask = self.has_ref_logprobs = False

    def _check_shape(self, name: str, x: Tensor, shape: tuple[int, ...]) -> None:
        # Shapes are host metadata: checking them is free and catches e.g. a critic's [N, 1]
        # output silently broadcasting against [N].
        if tuple(x.shape) != shape:
            raise ValueError(f"{type(self).__name__}.add: {name} has shape {tuple(x.shape)}, expected {shape}.")

    def add(
        self,
        *,
        obs: Tensor,
        actions: Tensor,
        logprobs: Tensor,
        values: Tensor,
        rewards: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        final_values: Tensor,
        valid: Tensor | None = None,
    ) -> None:
        """Store one step of all envs; each argument is ``[num_envs, ...]``.

        ``valid`` (bool) marks the copies whose step is a real transition; None means all. Steps
        marked invalid get no weight in ``minibatches``' mask and must not feed a real step's GAE
        (a text episode's padding follows its termination, which cuts the trace).

        ``obs`` is the observation the action was taken in, ``values`` its V(s).
        ``final_values`` is V(``info["final_obs"]``), the value of the observation the step
        led to. It is only read where the step ended an episode: elsewhere that observation is
        the next step's ``obs``, whose value ``compute_returns_and_advantages`` takes from
        ``values`` (or ``last_values``). So an agent may evaluate the critic on ``final_obs``
        for every env, or only for the envs that ended and pass anything (e.g. 0) elsewhere.
        """
        if self._pos == self.num_steps:
            raise RuntimeError(f"{type(self).__name__}.add: all {self.num_steps} steps are stored; "
                               "call reset() before collecting the next rollout.")
        N = self.num_envs
        self._check_shape("obs", obs, (N, *self.obs_shape))
        self._check_shape("actions", actions, (N, *self.action_shape))
        for name, x in (("logprobs", logprobs), ("values", values), ("rewards", rewards),
                        ("terminated", terminated), ("truncated", truncated), ("final_values", final_values)):
            self._check_shape(name, x, (N,))
        t = self._pos
        self.obs[t].copy_(obs)
        self.actions[t].copy_(actions)
        self.logprobs[t].copy_(logprobs)
        self.values[t].copy_(values)
        self.rewards[t].copy_(rewards)
        self.terminated[t].copy_(terminated)
        self.truncated[t].copy_(truncated)
        self.final_values[t].copy_(final_values)
        if valid is None:
            self.valid[t].fill_(True)
        else:
            self._check_shape("valid", valid, (N,))
            self.valid[t].copy_(valid)
            self.has_mask = True
        self._pos = t + 1
        self._computed = False

    def compute_returns_and_advantages(self, last_values: Tensor, gamma: float, lam: float) -> None:
        """Fill ``advantages`` and ``returns`` with ``compute_gae`` over the full rollout.

        ``last_values`` (``[num_envs]``) is V of the observation after the last step (the obs
        the rollout loop would act on next). First ``final_values`` is completed to
        ``compute_gae``'s convention: where a step did not end an episode it becomes the next
        step's value (``last_values`` for the last step).
        """
        if not self.full:
            raise RuntimeError(f"{type(self).__name__}.compute_returns_and_advantages: {self._pos} of "
                               f"{self.num_steps} steps stored; the rollout must be complete.")
        N = self.num_envs
        if tuple(last_values.shape) != (N,):
            raise ValueError(f"{type(self).__name__}.compute_returns_and_advantages: last_values has shape "
                             f"{tuple(last_values.shape)}, expected {(N,)}.")
        next_values = torch.cat((self.values[1:], last_values.to(self.values).view(1, N)))
        ended = self.terminated | self.truncated
        self.final_values.copy_(torch.where(ended, self.final_values, next_values))
        advantages, returns = compute_gae(self.rewards, self.values, self.terminated, self.truncated,
                                          self.final_values, gamma, lam)
        self.advantages.copy_(advantages)
        self.returns.copy_(returns)
        self._computed = True

    def compute_group_advantages(self, group_size: int) -> None:
        """Critic-free advantages (``group_advantages``) for a rollout holding exactly one episode per
        env, as a text environment's round does: every real step of an episode gets its return
        (undiscounted sum of its rewards) minus the mean return of the rest of its group; the value
        target is left at 0."""
        if not self.full:
            raise RuntimeError(f"{type(self).__name__}.compute_group_advantages: {self._pos} of "
                               f"{self.num_steps} steps stored; the rollout must be complete.")
        episode_returns = torch.where(self.valid, self.rewards, 0.0).sum(0)
        advantages = group_advantages(episode_returns, group_size)
        self.advantages.copy_(torch.where(self.valid, advantages.unsqueeze(0), 0.0))
        self.returns.zero_()
        self._computed = True

    def minibatches(self, num_minibatches: int, generator: torch.Generator | None = None,
                    members: int = 1, sequences: bool = False) -> Iterator[RolloutBatch]:
        """One epoch: a random permutation of all ``T * N`` transitions in ``num_minibatches`` equal chunks.

        The permutation comes from ``generator``, or the global torch RNG (so
        ``torch.manual_seed`` reproduces a run). Chunks must be equal, so ``num_minibatches``
        must divide ``T * N``; an uneven last chunk would weigh its samples differently.

        ``members`` > 1 splits the envs into that many consecutive groups (one per seed trained
        at once, ``rlcore.ensemble``): each group is permuted on its own and every minibatch
        holds an equal chunk of each, member-major.

        ``sequences=True`` keeps each env's T steps together (a policy that scores whole text
        episodes in one pass): the env columns are permuted and split, and every field comes as
        ``[B, T, ...]`` with B = num_envs / num_minibatches.
        """
        if sequences:
            return self._sequence_minibatches(num_minibatches, generator, members)
        # Checks and the permutation draw happen at call time; only the gathers wait for iteration.
        return (self.batch(idx) for idx in self.minibatch_indices(num_minibatches, generator, members))

    def minibatch_indices(self, num_minibatches: int, generator: torch.Generator | None = None,
                          members: int = 1) -> list[Tensor]:
        """The flat row indices (``t * num_envs + env``) of one epoch's minibatches, as ``minibatches``
        draws them; ``batch(idx)`` gathers one. Every chunk has the same length."""
        name = type(self).__name__
        if not (isinstance(members, int) and members >= 1 and self.num_envs % members == 0):
            raise ValueError(f"{name}.minibatches: members = {members!r} must be an int >= 1 dividing "
                             f"num_envs = {self.num_envs}.")
        envs_per_member = self.num_envs // members
        total = self.num_steps * envs_per_member
        if not (isinstance(num_minibatches, int) and 1 <= num_minibatches <= total and total % num_minibatches == 0):
            raise ValueError(
                f"{name}.minibatches: num_minibatches = {num_minibatches!r} is invalid: must be an int between "
                f"1 and num_steps * num_envs = {self.num_steps} * {self.num_envs} = {total} that divides {total}.")
        if not self._computed:
            raise RuntimeError(f"{name}.minibatches: call compute_returns_and_advantages() after the last add().")
        perm_device = generator.device if generator is not None else self.device
        perm = torch.stack([torch.randperm(total, generator=generator, device=perm_device) for _ in range(members)])
        perm = perm.to(self.device)
        if members > 1:  # position (t, j) of member m's envs -> row t * num_envs + m * envs_per_member + j
            offsets = torch.arange(members, device=self.device).unsqueeze(1) * envs_per_member
            perm = perm // envs_per_member * self.num_envs + offsets + perm % envs_per_member
        return [chunk.reshape(-1) for chunk in perm.split(total // num_minibatches, dim=1)]

    def batch(self, idx: Tensor) -> RolloutBatch:
        """The transitions at flat row indices ``idx`` (``t * num_envs + env``), every field ``[len(idx), ...]``."""
        return RolloutBatch(*(None if f is None else f.flatten(0, 1).index_select(0, idx) for f in self._fields()))

    def _fields(self) -> RolloutBatch:
        """Every stored field as ``[T, N, ...]``; mask and reference log-probabilities only when set."""
        return RolloutBatch(obs=self.obs, actions=self.actions, logprobs=self.logprobs, values=self.values,
                            advantages=self.advantages, returns=self.returns,
                            mask=self.valid if self.has_mask else None,
                            ref_logprobs=self.ref_logprobs if self.has_ref_logprobs else None)

    def _sequence_minibatches(self, num_minibatches: int, generator: torch.Generator | None,
                              members: int) -> Iterator[RolloutBatch]:
        name = type(self).__name__
        if members != 1:
            raise ValueError(f"{name}.minibatches: sequences=True trains one agent (members = 1), got {members}.")
        N = self.num_envs
        if not (isinstance(num_minibatches, int) and 1 <= num_minibatches <= N and N % num_minibatches == 0):
            raise ValueError(f"{name}.minibatches: with whole episodes, num_minibatches = {num_minibatches!r} must "
                             f"divide num_envs = {N} (each minibatch holds whole env columns).")
        if not self._computed:
            raise RuntimeError(f"{name}.minibatches: call compute_returns_and_advantages() after the last add().")
        perm_device = generator.device if generator is not None else self.device
        perm = torch.randperm(N, generator=generator, device=perm_device).to(self.device)
        columns = [None if f is None else f.transpose(0, 1) for f in self._fields()]  # [N, T, ...]
        return (RolloutBatch(*(None if f is None else f.index_select(0, idx) for f in columns))
                for idx in perm.split(N // num_minibatches))


def make_rollout_buffer(env: VecEnv, n_steps: int, device: torch.device | str) -> RolloutBuffer:
    """A buffer for `n_steps` steps of every copy of `env`, with its observation and action dtypes."""
    obs_space, act_space = env.single_observation_space, env.single_action_space
    obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.long if obs_space.dtype == np.int64 else torch.float32
    act_dtype = torch.float32 if isinstance(act_space, gym.spaces.Box) else torch.long
    return RolloutBuffer(n_steps, env.num_envs, tuple(obs_space.shape), obs_dtype, tuple(act_space.shape), act_dtype,
                         device)


class Policy(Protocol):
    """What a rollout needs of a policy (`rlcore.policies.ActorCritic`, `rlcore.lm.LMActorCritic`)."""

    def act(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]: ...

    def value(self, obs: Tensor) -> Tensor: ...

    def to_env(self, action: Tensor) -> Tensor: ...


Act = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


class Collected(NamedTuple):
    """What a rollout leaves besides the buffer: the observation to act on next, and a text
    environment's last finished round (prompts, completions, rewards), if one finished."""

    obs: Tensor
    texts: dict[str, list] | None


@torch.inference_mode()
def collect(env: VecEnv, policy: Policy, buffer: RolloutBuffer, obs: Tensor, act: Act | None = None,
            bootstrap: bool = True) -> Collected:
    """Fill `buffer` (reset first) with `buffer.num_steps` steps of `policy` on `env`, starting from `obs`.

    `act` is the acting step (default `policy.act`; e.g. `side_by_side_act` or a compiled one).
    Where a time limit cut an episode, V of its true final observation is stored for the bootstrap
    (NaN where that observation is not finite, so `NanGuard.record_rollout` reports the step);
    `bootstrap=False` stores 0 instead (a text episode is truncated only when its token budget is
    spent: nothing can follow). Steps a copy idles through (`info["active"]`) are marked invalid.

    Runs under `torch.inference_mode` (no autograd bookkeeping). Tensors made here are inference
    tensors: whatever outlives the rollout and is changed in place later must be written into
    preallocated storage (the buffer's) or rebound, never allocated here and mutated outside.
    """
    act = act or policy.act
    buffer.reset()
    no_final_values = torch.zeros(env.num_envs, device=buffer.device)
    texts = None
    for _ in range(buffer.num_steps):
        action, logprob, value = act(obs)
        next_obs, reward, terminated, truncated, info = env.step(policy.to_env(action))
        # On an accelerator one critic pass over every copy avoids asking which ones were cut (a
        # sync); on the CPU asking is free and most steps truncate nothing, so the pass is skipped.
        if bootstrap and (env.device.type != "cpu" or bool(truncated.any())):
            final_obs = info["final_obs"]
            final_value = policy.value(final_obs)
            if final_obs.is_floating_point():  # a non-finite final observation leaves a NaN the NaN guard sees
                final_value = torch.where(torch.isfinite(final_obs.flatten(1)).all(1), final_value, float("nan"))
        else:
            final_value = no_final_values
        buffer.add(obs=obs, actions=action, logprobs=logprob, values=value, rewards=reward,
                   terminated=terminated, truncated=truncated, final_values=final_value, valid=info.get("active"))
        obs = next_obs
        texts = info.get("texts", texts)
    return Collected(obs, texts)


@torch.inference_mode()
def gae_advantages(buffer: RolloutBuffer, policy: Policy, next_obs: Tensor, gamma: float, lam: float) -> None:
    """GAE advantages and returns of the rollout in `buffer`, bootstrapped from V(`next_obs`)."""
    buffer.compute_returns_and_advantages(policy.value(next_obs), gamma, lam)
