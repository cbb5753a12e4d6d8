"""Replay buffers: uniform and prioritised, with n-step returns computed at sample time.

Storage is circular and time-major, ``[capacity_per_env, num_envs, ...]``, preallocated on
``device``: one ``add`` writes one row (one step of every env), so a row index is a time
step and a column an env. A transition is named by its flat index ``row * num_envs + env``.

n-step returns are not baked in at ``add`` time (that would need a per-env queue and would
fix ``n`` for the buffer's life); ``sample`` looks ahead up to ``n_step`` stored steps in the
same env column, stopping after the first terminated or truncated step and at the newest
stored step. A window cut short is still an unbiased bootstrap target, just with ``m < n``:

    target = rewards + discounts * V(next_obs),  rewards = sum_{k<m} gamma^k r_{t+k},
    discounts = gamma^m, or 0 if a termination happened within the m steps.

terminated and truncated are stored separately so a time-limit truncation still bootstraps
from the true final observation (``info["final_obs"]`` of a VecEnv, passed as ``next_obs``).

Nothing in ``add``, ``sample`` or ``update_priorities`` reads a tensor value on the host:
positions are Python ints and every per-element decision is a ``torch.where``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor


class ReplayBatch(NamedTuple):
    """A sampled batch; every field has leading dimension B, on the buffer's device."""

    obs: Tensor
    """[B, *obs_shape], stored dtype (uint8 images stay uint8)."""
    actions: Tensor
    """[B, *action_shape]."""
    rewards: Tensor
    """[B] float32, the n-step discounted sum ``sum_{k<m} gamma^k r_{t+k}``."""
    next_obs: Tensor
    """[B, *obs_shape], the observation after m steps (the true final obs if the episode ended)."""
    terminated: Tensor
    """[B] bool, a termination happened within the m steps."""
    truncated: Tensor
    """[B] bool, the m steps ended at a truncation and no termination: bootstrap still applies."""
    discounts: Tensor
    """[B] float32, ``gamma**m``, 0 where terminated: ``target = rewards + discounts * V(next_obs)``."""
    weights: Tensor
    """[B] float32 importance-sampling weights (ones for uniform sampling, 0 for unusable samples)."""
    indices: Tensor
    """[B] long, flat indices ``row * num_envs + env`` to pass back to ``update_priorities``."""


def split_batch(batch: ReplayBatch, batch_size: int) -> list[ReplayBatch]:
    """Consecutive ``batch_size`` slices of one large sample: the batches of several gradient steps drawn at
    once (uniform replay does not change between them), in fewer, larger gathers."""
    return [ReplayBatch(*(field[k:k + batch_size] for field in batch)) for k in range(0, len(batch.rewards), batch_size)]


def _flat(storage: Tensor) -> Tensor:
    """``[rows, num_envs, ...]`` viewed as ``[rows * num_envs, ...]``, addressed by flat index.

    Gathers go through ``index_select``/``index_copy_`` on these views: on CPU they are far
    faster than multi-tensor advanced indexing, and on GPU no slower.
    """
    return storage.flatten(0, 1)


def _invalid(owner: str, name: str, value: Any, constraint: str) -> ValueError:
    return ValueError(f"{owner}.{name} = {value!r} is invalid: must be {constraint}.")


class ReplayBuffer:
    """Uniform replay over ``num_envs`` parallel env streams with n-step returns.

    ``capacity`` is rounded up to a multiple of ``num_envs`` (``capacity_per_env`` rows).

    ``optimize_memory_usage=True`` (for image observations) halves memory by not storing
    ``next_obs``: it is read from the following row of the same env. Where an episode ended
    that row holds the reset observation, so the true final observations are kept in a
    smaller side ring per env (``side_capacity`` entries), each row remembering its side
    slot. If episodes end so often that a side entry is overwritten while its row is still
    stored, a transition ending there has lost its ``next_obs``; it is detected by an
    owner-stamp check and returned with weight 0 (the agent's weighted loss then ignores it)
    rather than forcing a host sync to resample. The newest row has no following row yet, so
    in this mode it is neither sampled nor used in n-step look-ahead until the next ``add``;
    this relies on each ``add``'s ``obs`` being the previous ``add``'s ``next_obs`` wherever
    the episode continued, which holds when the agent passes what the VecEnv returned.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: torch.dtype,
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        optimize_memory_usage: bool = False,
    ) -> None:
        name = type(self).__name__
        if not (isinstance(capacity, int) and capacity >= 1):
            raise _invalid(name, "capacity", capacity, "an int >= 1")
        if not (isinstance(num_envs, int) and num_envs >= 1):
            raise _invalid(name, "num_envs", num_envs, "an int >= 1")
        if not all(isinstance(d, int) and d >= 1 for d in obs_shape):
            raise _invalid(name, "obs_shape", obs_shape, "a tuple of ints >= 1")
        if not all(isinstance(d, int) and d >= 1 for d in action_shape):
            raise _invalid(name, "action_shape", action_shape, "a tuple of ints >= 1 (() for discrete actions)")
        if not isinstance(obs_dtype, torch.dtype):
            raise _invalid(name, "obs_dtype", obs_dtype, "a torch.dtype")
        if not isinstance(action_dtype, torch.dtype):
            raise _invalid(name, "action_dtype", action_dtype, "a torch.dtype")
        if not (isinstance(n_step, int) and n_step >= 1):
            raise _invalid(name, "n_step", n_step, "an int >= 1")
        if not 0.0 < gamma <= 1.0:
            raise _invalid(name, "gamma", gamma, "in (0, 1]")
        per_env = math.ceil(capacity / num_envs)
        if optimize_memory_usage and per_env < 2:
            raise _invalid(name, "capacity", capacity,
                           f">= 2 * num_envs ({2 * num_envs}) with optimize_memory_usage, which reads next_obs "
                           "from the following row")

        self.device = torch.device(device)
        self.num_envs = num_envs
        self.capacity_per_env = per_env
        self.capacity = per_env * num_envs
        self.obs_shape = tuple(obs_shape)
        self.action_shape = tuple(action_shape)
        self.n_step = n_step
        self.gamma = float(gamma)
        self.optimize_memory_usage = optimize_memory_usage

        C, N, dev = per_env, num_envs, self.device
        # Observation storage is the big part (2.8 GB for 100k Atari frames): torch.empty leaves
        # pages untouched until written, so memory grows as the buffer fills. Unwritten rows are
        # never read as observations (sampling and look-ahead stay within stored rows).
        self._obs = torch.empty((C, N, *obs_shape), dtype=obs_dtype, device=dev)
        self._actions = torch.zeros((C, N, *action_shape), dtype=action_dtype, device=dev)
        self._rewards = torch.zeros((C, N), dtype=torch.float32, device=dev)
        self._terminated = torch.zeros((C, N), dtype=torch.bool, device=dev)
        self._truncated = torch.zeros((C, N), dtype=torch.bool, device=dev)
        if optimize_memory_usage:
            # Never more side entries than rows: C entries already cover every row ending an episode.
            self.side_capacity = min(C, max(64, C // 16))
            S = self.side_capacity
            self._side_obs = torch.empty((S, N, *obs_shape), dtype=obs_dtype, device=dev)
            # Owner stamp: the global step number whose final obs the entry holds (-1: none yet).
            self._side_owner = torch.full((S, N), -1, dtype=torch.long, device=dev)
            self._side_pos = torch.zeros(N, dtype=torch.long, device=dev)  # next side slot per env
            self._side_idx = torch.zeros((C, N), dtype=torch.long, device=dev)  # each row's side slot
            self._row_step = torch.full((C,), -1, dtype=torch.long, device=dev)  # global step held by each row
        else:
            self._next_obs = torch.empty((C, N, *obs_shape), dtype=obs_dtype, device=dev)

        # Look-ahead never spans more rows than are stored.
        self._window = min(n_step, C)
        powers = torch.tensor([self.gamma**k for k in range(self._window + 1)], dtype=torch.float64)
        self._gamma_pow = powers.to(torch.float32).to(dev)  # gamma**k for k = 0..window
        self._env_ids = torch.arange(N, device=dev)
        self._pos = 0  # next row to write
        self._full = False
        self._num_adds = 0  # global step counter, the owner stamp of side entries

    # ------------------------------------------------------------------ storage

    def __len__(self) -> int:
        """Transitions stored (the newest row included, even when it is not yet sampleable)."""
        return self._stored_rows * self.num_envs

    @property
    def _stored_rows(self) -> int:
        return self.capacity_per_env if self._full else self._pos

    @property
    def _sampleable_rows(self) -> int:
        return self._stored_rows - (1 if self.optimize_memory_usage else 0)

    @property
    def _oldest_row(self) -> int:
        return self._pos if self._full else 0

    def _check_shape(self, name: str, x: Tensor, shape: tuple[int, ...]) -> None:
        # Shapes are host metadata, so checking them costs no sync and catches silent broadcasts.
        if tuple(x.shape) != shape:
            raise ValueError(f"{type(self).__name__}.add: {name} has shape {tuple(x.shape)}, expected {shape}.")

    def add(self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor,
            terminated: Tensor, truncated: Tensor) -> None:
        """Store one step of all envs; each argument is ``[num_envs, ...]``.

        ``next_obs`` is the observation the step led to: the true final observation where an
        episode ended (``info["final_obs"]`` of a VecEnv), not the reset observation.
        """
        N = self.num_envs
        self._check_shape("obs", obs, (N, *self.obs_shape))
        self._check_shape("next_obs", next_obs, (N, *self.obs_shape))
        self._check_shape("action", action, (N, *self.action_shape))
        self._check_shape("reward", reward, (N,))
        self._check_shape("terminated", terminated, (N,))
        self._check_shape("truncated", truncated, (N,))

        row = self._pos
        self._obs[row].copy_(obs)
        self._actions[row].copy_(action)
        self._rewards[row].copy_(reward)
        self._terminated[row].copy_(terminated)
        self._truncated[row].copy_(truncated)
        if self.optimize_memory_usage:
            done = (terminated | truncated).to(device=self.device, dtype=torch.bool)
            slot = self._side_pos
            side = slot * self.num_envs + self._env_ids  # flat side-ring entries of this step
            # Every env writes its current side slot, but envs that did not end keep the old
            # content: the slot may still belong to a stored row, and a boolean-mask write
            # would need the mask's count on the host.
            keep_shape = (N,) + (1,) * len(self.obs_shape)
            side_obs = _flat(self._side_obs)
            side_owner = self._side_owner.view(-1)
            final = next_obs.to(device=self.device, dtype=side_obs.dtype)
            side_obs.index_copy_(0, side, torch.where(done.view(keep_shape), final, side_obs.index_select(0, side)))
            side_owner.index_copy_(0, side, torch.where(done, self._num_adds, side_owner.index_select(0, side)))
            self._side_idx[row] = slot
            self._row_step[row].fill_(self._num_adds)  # a Python int written by index would sync on CUDA
            self._side_pos = (slot + done.long()) % self.side_capacity
        else:
            self._next_obs[row].copy_(next_obs)

        self._num_adds += 1
        self._pos = (row + 1) % self.capacity_per_env
        self._full = self._full or self._pos == 0

    # ----------------------------------------------------------------- sampling

    def _check_can_sample(self, batch_size: int) -> None:
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"{type(self).__name__}.sample: batch_size = {batch_size!r} is invalid: "
                             "must be an int >= 1.")
        if self._sampleable_rows < 1:
            need = "2 steps (next_obs of the newest step is the following step's obs)" \
                if self.optimize_memory_usage else "1 step"
            raise RuntimeError(f"{type(self).__name__}.sample: the buffer holds {self._stored_rows} step(s) of "
                               f"{self.num_envs} env(s); sampling needs at least {need}.")

    def sample(self, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions drawn uniformly with replacement from the sampleable ones."""
        self._check_can_sample(batch_size)
        N = self.num_envs
        flat = torch.randint(self._sampleable_rows * N, (batch_size,), device=self.device)
        rows = (self._oldest_row + flat // N) % self.capacity_per_env
        return self.gather(rows * N + flat % N)

    def gather(self, indices: Tensor) -> ReplayBatch:
        """The n-step transitions starting at flat ``indices`` (``row * num_envs + env``).

        Indices must be sampleable: stored, and not the newest row when
        ``optimize_memory_usage``. ``weights`` is 1, or 0 where the transition's final
        observation was lost from the side ring.
        """
        C, N, dev = self.capacity_per_env, self.num_envs, self.device
        indices = indices.to(device=dev, dtype=torch.long)
        rows, envs = indices // N, indices % N
        k = torch.arange(self._window, device=dev)
        # Flat indices of the look-ahead steps, [B, window]: same env column, following rows.
        look = ((rows.unsqueeze(1) + k) % C * N + envs.unsqueeze(1)).view(-1)
        window = (indices.shape[0], self._window)
        rewards = self._rewards.view(-1).index_select(0, look).view(window)
        terminated = self._terminated.view(-1).index_select(0, look).view(window)
        truncated = self._truncated.view(-1).index_select(0, look).view(window)
        ended = terminated | truncated

        # Step k counts if it is stored and no earlier step of the window ended the episode
        # (the ending step itself counts). Step 0 always counts, so m >= 1.
        age = (rows - self._oldest_row) % C  # 0 = oldest stored row
        stored = age.unsqueeze(1) + k <= self._sampleable_rows - 1
        ended_before = (ended.long().cumsum(1) - ended.long()) > 0
        counted = stored & ~ended_before
        m = counted.sum(1)

        n_step_return = torch.where(counted, rewards * self._gamma_pow[: self._window], 0.0).sum(1)
        did_terminate = (terminated & counted).any(1)
        # Truncation only on a step that did not also terminate: a termination never bootstraps.
        did_truncate = (truncated & counted).any(1) & ~did_terminate
        discounts = torch.where(did_terminate, 0.0, self._gamma_pow.index_select(0, m))
        last_row = (rows + m - 1) % C  # row of the window's final step
        last = last_row * N + envs

        if self.optimize_memory_usage:
            last_ended = (ended & counted).any(1)  # counting stops at the first end, so it is the last step
            side = self._side_idx.view(-1).index_select(0, last) * N + envs
            following = _flat(self._obs).index_select(0, (last + N) % (C * N))  # same env, next row
            final = _flat(self._side_obs).index_select(0, side)
            bshape = (-1,) + (1,) * len(self.obs_shape)
            next_obs = torch.where(last_ended.view(bshape), final, following)
            # The side slot still holds this row's final obs only if its stamp is this row's step.
            intact = self._side_owner.view(-1).index_select(0, side) == self._row_step.index_select(0, last_row)
            weights = (~last_ended | intact).to(torch.float32)
        else:
            next_obs = _flat(self._next_obs).index_select(0, last)
            weights = torch.ones(indices.shape, dtype=torch.float32, device=dev)

        return ReplayBatch(
            obs=_flat(self._obs).index_select(0, indices),
            actions=_flat(self._actions).index_select(0, indices),
            rewards=n_step_return,
            next_obs=next_obs,
            terminated=did_terminate,
            truncated=did_truncate,
            discounts=discounts,
            weights=weights,
            indices=indices,
        )

    # -------------------------------------------------------------- checkpoints

    def _tensors(self) -> dict[str, Tensor]:
        tensors = {"obs": self._obs, "actions": self._actions, "rewards": self._rewards,
                   "terminated": self._terminated, "truncated": self._truncated}
        if self.optimize_memory_usage:
            tensors.update(side_obs=self._side_obs, side_owner=self._side_owner, side_pos=self._side_pos,
                           side_idx=self._side_idx, row_step=self._row_step)
        else:
            tensors["next_obs"] = self._next_obs
        return tensors

    _ROW_TENSORS = ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "side_idx", "row_step")

    def state_dict(self) -> dict[str, Any]:
        """The stored rows and the position, so a resumed run samples exactly as the original would.
        Only the rows written so far are kept: a checkpoint of a buffer that has barely filled is small.

        Tensors are returned by reference (a view of the stored rows), as ``nn.Module.state_dict`` does;
        ``torch.save`` copies them.
        """
        rows = self._stored_rows
        return {**{k: v[:rows] if k in self._ROW_TENSORS else v for k, v in self._tensors().items()},
                "pos": self._pos, "full": self._full, "num_adds": self._num_adds, "capacity_per_env": self.capacity_per_env}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output from a buffer built with the same arguments (older checkpoints,
        which kept every row, load too)."""
        tensors = self._tensors()
        expected = set(tensors) | {"pos", "full", "num_adds", "capacity_per_env"}
        state = {"capacity_per_env": self.capacity_per_env, **state}  # older checkpoints: checked by shape below
        if state["capacity_per_env"] != self.capacity_per_env:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state holds a buffer of capacity_per_env = "
                             f"{state['capacity_per_env']}, this one has {self.capacity_per_env} (set buffer_size as it "
                             "was saved).")
        if set(state) != expected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: keys {sorted(state)} do not match "
                             f"{sorted(expected)} (was it saved with other arguments?).")
        for key, dst in tensors.items():
            src = state[key]
            rows_ok = key in self._ROW_TENSORS and src.shape[0] <= dst.shape[0]
            if (src.shape[1:] != dst.shape[1:] or not (rows_ok or src.shape[0] == dst.shape[0])
                    or src.dtype != dst.dtype):
                raise ValueError(f"{type(self).__name__}.load_state_dict: '{key}' is {src.dtype}{list(src.shape)}, "
                                 f"expected {dst.dtype}{list(dst.shape)}.")
        for key, dst in tensors.items():
            dst[:state[key].shape[0]].copy_(state[key])
        self._pos, self._full, self._num_adds = int(state["pos"]), bool(state["full"]), int(state["num_adds"])


class SumTree:
    """Array-based binary sum tree over ``capacity`` non-negative leaves, batched in torch.

    ``tree[1]`` is the root, node ``i`` has children ``2i`` and ``2i+1``, leaves sit at
    ``[size, 2 * size)`` with ``size = next_pow2(capacity)`` (padding leaves stay 0). Parents
    are recomputed from their children rather than patched with deltas, so float32 error
    does not accumulate over millions of updates.
    """

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        if not (isinstance(capacity, int) and capacity >= 1):
            raise _invalid("SumTree", "capacity", capacity, "an int >= 1")
        self.capacity = capacity
        self._size = 1 << (capacity - 1).bit_length()
        self._depth = self._size.bit_length() - 1  # levels between a leaf and the root
        self.tree = torch.zeros(2 * self._size, dtype=torch.float32, device=device)

    def total(self) -> Tensor:
        """Sum of all leaves, a 0-dim tensor (no host sync)."""
        return self.tree[1]

    def get(self, indices: Tensor) -> Tensor:
        """Leaf values at ``indices``."""
        return self.tree.index_select(0, indices + self._size)

    def update(self, indices: Tensor, values: Tensor) -> None:
        """Set leaves ``indices`` to ``values``; where an index repeats, the largest value wins."""
        nodes = indices.to(device=self.tree.device, dtype=torch.long) + self._size
        # scatter_reduce's amax makes duplicates deterministic; a plain indexed write would let
        # an arbitrary duplicate win on GPU.
        self.tree.scatter_reduce_(0, nodes, values.to(self.tree), reduce="amax", include_self=False)
        for _ in range(self._depth):
            nodes = nodes // 2
            # Duplicate parents all write the same freshly computed sum, so repeats are harmless.
            self.tree.index_copy_(0, nodes, self._children_sum(nodes))

    def _children_sum(self, nodes: Tensor) -> Tensor:
        return self.tree.index_select(0, 2 * nodes) + self.tree.index_select(0, 2 * nodes + 1)

    def find(self, prefix: Tensor) -> Tensor:
        """For each value ``v`` in ``prefix`` (in ``[0, total)``), the leaf ``i`` with
        ``sum(leaves[:i]) <= v < sum(leaves[:i + 1])``, all descents done together.

        A descent never enters a zero-sum subtree, so float rounding near a boundary (or
        ``v == total``) yields a neighbouring positive leaf, never an empty slot.
        """
        v = prefix.to(self.tree)
        nodes = torch.ones(prefix.shape, dtype=torch.long, device=self.tree.device)
        for _ in range(self._depth):
            left = self.tree.index_select(0, 2 * nodes)
            go_right = (v >= left) & (self.tree.index_select(0, 2 * nodes + 1) > 0)
            v = torch.where(go_right, v - left, v)
            nodes = 2 * nodes + go_right.long()
        return nodes - self._size


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritised replay (Schaul et al. 2016, "Prioritized Experience Replay").

    ``P(i) = p_i / sum_j p_j`` with stored priority ``p_i = (|delta_i| + eps)**alpha``; new
    transitions get the largest stored priority seen so far (1 before any update), so each is
    replayed at least once soon. ``beta`` is a plain attribute the agent anneals towards 1.

    A leaf of priority 0 means "not sampleable" (empty slot, the newest row under
    ``optimize_memory_usage``, or a transition whose final obs left the side ring);
    ``update_priorities`` never revives one, so call it before the next ``add`` (the usual
    sample -> learn -> update order) for the indices to still name the transitions sampled.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: torch.dtype,
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        optimize_memory_usage: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
    ) -> None:
        name = type(self).__name__
        if not alpha >= 0.0:
            raise _invalid(name, "alpha", alpha, ">= 0")
        if not beta >= 0.0:
            raise _invalid(name, "beta", beta, ">= 0")
        if not eps > 0.0:
            raise _invalid(name, "eps", eps, "> 0 (so every stored priority is positive)")
        super().__init__(capacity, num_envs, obs_shape, obs_dtype, action_shape, action_dtype, device,
                         n_step, gamma, optimize_memory_usage)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)
        self._tree = SumTree(self.capacity, self.device)
        self._max_priority = torch.ones((), dtype=torch.float32, device=self.device)

    def add(self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor,
            terminated: Tensor, truncated: Tensor) -> None:
        row = self._pos
        super().add(obs, action, reward, next_obs, terminated, truncated)
        N = self.num_envs
        new = self._env_ids + row * N
        fresh = self._max_priority.expand(N)
        if not self.optimize_memory_usage:
            self._tree.update(new, fresh)
            return
        # The newest row has no following row yet: priority 0 keeps it out of sampling until
        # this add completes the row before it, which now gets the max priority.
        zero = torch.zeros_like(fresh)
        if self._stored_rows < 2:
            self._tree.update(new, zero)
            return
        prev = self._env_ids + (row - 1) % self.capacity_per_env * N
        self._tree.update(torch.cat([new, prev]), torch.cat([zero, fresh]))

    def sample(self, batch_size: int) -> ReplayBatch:
        """Stratified proportional sampling: one draw per equal slice of the priority mass."""
        self._check_can_sample(batch_size)
        dev = self.device
        total = self._tree.total()
        bounds = (torch.arange(batch_size, device=dev) + torch.rand(batch_size, device=dev)) * (total / batch_size)
        indices = self._tree.find(bounds)
        probs = self._tree.get(indices) / total
        # IS weights (N * P(i))**-beta, normalised by the max within this batch (not over the
        # whole buffer) so they only scale the loss down and need no buffer-wide min priority.
        n = self._sampleable_rows * self.num_envs
        weights = (n * probs) ** -self.beta
        weights = weights / weights.max()
        batch = self.gather(indices)
        if self.optimize_memory_usage:
            # Transitions whose final obs left the side ring stay unusable until their row is
            # overwritten: drop them from sampling instead of drawing them again.
            self._tree.update(indices, torch.where(batch.weights > 0, self._tree.get(indices), 0.0))
        return batch._replace(weights=weights * batch.weights)

    def update_priorities(self, indices: Tensor, priorities: Tensor) -> None:
        """Store ``(|priorities| + eps)**alpha`` at flat ``indices`` (e.g. |TD error|), batched.

        Repeated indices are fine (the largest wins). Leaves at priority 0 stay 0 (see class doc).
        """
        if indices.shape != priorities.shape or indices.dim() != 1:
            raise ValueError(f"{type(self).__name__}.update_priorities: indices {tuple(indices.shape)} and "
                             f"priorities {tuple(priorities.shape)} must be 1-D of equal length.")
        if indices.numel() == 0:
            return
        indices = indices.to(device=self.device, dtype=torch.long)
        p = (priorities.detach().to(device=self.device, dtype=torch.float32).abs() + self.eps) ** self.alpha
        p = torch.where(self._tree.get(indices) > 0, p, 0.0)
        self._tree.update(indices, p)
        self._max_priority = torch.maximum(self._max_priority, p.max())

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tree": self._tree.tree, "max_priority": self._max_priority}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "tree" not in state or "max_priority" not in state:
            raise ValueError(f"{type(self).__name__}.load_state_dict: 'tree' and 'max_priority' are missing "
                             "(was it saved from a uniform ReplayBuffer?).")
        tree, max_priority = state.pop("tree"), state.pop("max_priority")
        if tree.shape != self._tree.tree.shape:
            raise ValueError(f"{type(self).__name__}.load_state_dict: 'tree' has shape {list(tree.shape)}, "
                             f"expected {list(self._tree.tree.shape)}.")
        super().load_state_dict(state)
        self._tree.tree.copy_(tree)
        self._max_priority.copy_(max_priority)
