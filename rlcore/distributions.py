"""Action distributions with one interface, and the policy heads that produce them.

Every distribution offers ``sample()``, ``log_prob(action)`` and ``entropy()`` (both ``[B]``:
summed over the action's dimensions) and ``mode()`` (the deterministic action), for any
leading batch shape (``[B]`` or time-major ``[T, N]``):

- ``Categorical(logits)`` for ``Discrete``, and for a language model's next token (the
  logits of a 50k vocabulary are fine; half-precision logits are normalised in float32,
  since PPO's ratio ``exp(logp_new - logp_old)`` would otherwise carry bf16 rounding noise);
- ``MultiCategorical(logits, nvec)`` for ``MultiDiscrete``: independent categoricals;
- ``DiagGaussian(mean, log_std)`` for ``Box``, ``log_std`` a state-independent parameter;
- ``TanhDiagGaussian(mean, log_std)``: the Gaussian squashed into (-1, 1).

They are written directly rather than wrapping ``torch.distributions``, whose argument
validation (on by default) checks values with ``if not valid.all()``: a host sync on every
policy call on an accelerator.

Bounded Box actions: clip or squash
-----------------------------------
The default (as in SB3 and CleanRL) samples from an unbounded
Gaussian, stores that unclipped sample and its log-prob in the rollout, and only clips the
copy sent to the environment (``clip_action``). The log-prob stays that of the Gaussian, so
the importance ratio is exact; the cost is that the env sees a distribution with point
masses at the bounds that the policy does not model (mass beyond a bound acts like the
bound). ``make_action_head(space, in_dim, squash=True)`` instead uses ``TanhDiagGaussian``:
actions lie in (-1, 1) by construction, ``scale_action`` maps them onto ``[low, high]``,
and the log-prob includes the tanh's log-det-Jacobian, ``log p(a) = log N(u) - sum log(1 -
tanh(u)^2)`` with ``u = atanh(a)``. Its entropy has no closed form (see its docstring).
Both are offered because neither wins everywhere: clipping is the tested PPO default,
squashing avoids wasted mass beyond the bounds (as in SAC).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from rlcore.ensemble import member_rows

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
POLICY_OUTPUT_GAIN = 0.01
"""Orthogonal-init gain of the policy's output layer: near-uniform initial actions
(Andrychowicz et al. 2021; "The 37 implementation details of PPO", detail 2)."""


class ActionDistribution:
    """The interface every distribution here implements; ``B`` is any leading batch shape."""

    def sample(self) -> Tensor:
        """A random action ``[B, *action_shape]``, without gradient."""
        raise NotImplementedError  # abstract

    def log_prob(self, action: Tensor) -> Tensor:
        """``[B]`` log-probability (density) of ``action``, summed over the action's dimensions."""
        raise NotImplementedError  # abstract

    def entropy(self) -> Tensor:
        """``[B]`` entropy, summed over the action's dimensions."""
        raise NotImplementedError  # abstract

    def mode(self) -> Tensor:
        """The most likely action ``[B, *action_shape]`` (used by ``predict(deterministic=True)``)."""
        raise NotImplementedError  # abstract


class Categorical(ActionDistribution):
    """A categorical distribution over the last dimension of ``logits``; actions are int64 indices."""

    def __init__(self, logits: Tensor) -> None:
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        self.logits = logits.log_softmax(-1)  # normalised log-probabilities, [B, K]

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    def sample(self) -> Tensor:
        # Inverse CDF: the number of cumulative probabilities below u * total, cheaper than
        # torch.multinomial at thousands of rows on a CPU; scaling u by the total keeps the index
        # below K and off zero-probability actions even when the sum rounds short of 1.
        # From 16 actions up (a vocabulary) a binary search per row finds the same index in fewer
        # operations; with few actions and many rows one comparison over all of them wins
        # (docs/performance.md).
        cdf = self.probs.cumsum(-1)
        u = torch.rand(cdf.shape[:-1] + (1,), dtype=cdf.dtype, device=cdf.device) * cdf[..., -1:]
        if cdf.shape[-1] >= 16:
            return torch.searchsorted(cdf, u).squeeze(-1)
        return (cdf < u).sum(-1)

    def log_prob(self, action: Tensor) -> Tensor:
        return self.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        # A masked action (logit -inf) has p = 0 and would give 0 * -inf = NaN; clamping its
        # log-prob to the most negative finite float makes its term exactly 0.
        logp = self.logits.clamp(min=torch.finfo(self.logits.dtype).min)
        return -(logp.exp() * logp).sum(-1)

    def mode(self) -> Tensor:
        return self.logits.argmax(-1)


class MultiCategorical(ActionDistribution):
    """Independent categoricals for a ``MultiDiscrete(nvec)`` action ``[B, len(nvec)]``.

    ``logits`` is ``[B, sum(nvec)]``: consecutive slices of sizes ``nvec``. Log-probs and
    entropies are summed over the components (the joint of independent variables).
    """

    def __init__(self, logits: Tensor, nvec: Sequence[int]) -> None:
        self.nvec = tuple(int(n) for n in nvec)
        if logits.shape[-1] != sum(self.nvec):
            raise ValueError(f"MultiCategorical: logits have {logits.shape[-1]} entries in the last dimension, "
                             f"expected sum(nvec) = {sum(self.nvec)} for nvec = {list(self.nvec)}.")
        self.components = [Categorical(part) for part in logits.split(self.nvec, dim=-1)]

    def sample(self) -> Tensor:
        return torch.stack([c.sample() for c in self.components], dim=-1)

    def log_prob(self, action: Tensor) -> Tensor:
        parts = action.unbind(-1)
        return torch.stack([c.log_prob(a) for c, a in zip(self.components, parts, strict=True)], dim=-1).sum(-1)

    def entropy(self) -> Tensor:
        return torch.stack([c.entropy() for c in self.components], dim=-1).sum(-1)

    def mode(self) -> Tensor:
        return torch.stack([c.mode() for c in self.components], dim=-1)


def _event_sum(x: Tensor, event_ndim: int) -> Tensor:
    return x.sum(dim=tuple(range(-event_ndim, 0))) if event_ndim else x


class DiagGaussian(ActionDistribution):
    """A Gaussian with diagonal covariance; ``log_std`` broadcasts to ``mean`` (a state-independent
    parameter of shape ``action_shape`` in the usual PPO setup).

    ``event_ndim`` is the number of trailing dimensions that form one action (1 for a
    ``Box((d,))``); log-probs and entropies are summed over them.
    """

    def __init__(self, mean: Tensor, log_std: Tensor, event_ndim: int = 1) -> None:
        if event_ndim < 0 or event_ndim > mean.dim():
            raise ValueError(f"{type(self).__name__}: event_ndim = {event_ndim} must be in [0, {mean.dim()}] "
                             f"for a mean of shape {tuple(mean.shape)}.")
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.event_ndim = event_ndim

    @property
    def std(self) -> Tensor:
        return self.log_std.exp()

    def rsample(self) -> Tensor:
        """A sample that is differentiable in ``mean`` and ``log_std`` (reparameterisation)."""
        return self.mean + self.std * torch.randn_like(self.mean)

    def sample(self) -> Tensor:
        with torch.no_grad():
            return self.rsample()

    def log_prob(self, action: Tensor) -> Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return _event_sum(-0.5 * z.square() - self.log_std - _HALF_LOG_2PI, self.event_ndim)

    def entropy(self) -> Tensor:
        return _event_sum(0.5 + _HALF_LOG_2PI + self.log_std, self.event_ndim)

    def mode(self) -> Tensor:
        return self.mean


def _tanh_log_det(u: Tensor) -> Tensor:
    """``log(1 - tanh(u)^2)``, written as ``2 (log 2 - u - softplus(-2u))`` so it stays finite for large |u|."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class TanhDiagGaussian(ActionDistribution):
    """``a = tanh(u)``, ``u ~ DiagGaussian(mean, log_std)``: actions in (-1, 1).

    ``log_prob(a) = log N(u) - sum log(1 - tanh(u)^2)``, with ``u = atanh(a)`` recovered from
    the action after clamping it into ``[-1 + eps, 1 - eps]`` (``eps`` the dtype's machine
    epsilon): a sample that rounded to exactly +-1 would otherwise give ``atanh = inf``. The
    clamp only changes actions whose pre-tanh value exceeded ~8 (float32).

    ``entropy()`` has no closed form; it returns the one-sample estimate ``-log p(a)`` at a
    reparameterised sample, unbiased for the true entropy and differentiable in ``mean`` and
    ``log_std`` (unlike the base Gaussian's entropy, which ignores the squashing and would
    reward pushing mass into the saturated tails). It draws from the global RNG.
    """

    def __init__(self, mean: Tensor, log_std: Tensor, event_ndim: int = 1) -> None:
        self.base = DiagGaussian(mean, log_std, event_ndim)

    def sample(self) -> Tensor:
        return torch.tanh(self.base.sample())

    def _log_prob_pre_tanh(self, u: Tensor) -> Tensor:
        return self.base.log_prob(u) - _event_sum(_tanh_log_det(u), self.base.event_ndim)

    def rsample_with_log_prob(self) -> tuple[Tensor, Tensor]:
        """A reparameterised action and its log-probability, taken at the pre-tanh sample (no atanh
        round trip): what SAC's actor and entropy losses differentiate."""
        u = self.base.rsample()
        return torch.tanh(u), self._log_prob_pre_tanh(u)

    def log_prob(self, action: Tensor) -> Tensor:
        eps = torch.finfo(action.dtype).eps
        return self._log_prob_pre_tanh(torch.atanh(action.clamp(-1.0 + eps, 1.0 - eps)))

    def entropy(self) -> Tensor:
        # Evaluated at the pre-tanh sample itself, so no atanh round trip loses precision.
        return -self._log_prob_pre_tanh(self.base.rsample())

    def mode(self) -> Tensor:
        return torch.tanh(self.base.mean)


# ------------------------------------------------------------------------------ heads


def _policy_layer(in_dim: int, out_dim: int) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain=POLICY_OUTPUT_GAIN)
    nn.init.zeros_(layer.bias)
    return layer


class CategoricalHead(nn.Module):
    """Features ``[B, in_dim]`` -> ``Categorical`` over ``n`` actions."""

    def __init__(self, in_dim: int, n: int) -> None:
        super().__init__()
        self.logits = _policy_layer(in_dim, n)

    def forward(self, features: Tensor) -> Categorical:
        return Categorical(self.logits(features))


class MultiCategoricalHead(nn.Module):
    """Features ``[B, in_dim]`` -> ``MultiCategorical`` with one categorical per entry of ``nvec``."""

    def __init__(self, in_dim: int, nvec: Sequence[int]) -> None:
        super().__init__()
        self.nvec = tuple(int(n) for n in nvec)
        self.logits = _policy_layer(in_dim, sum(self.nvec))

    def forward(self, features: Tensor) -> MultiCategorical:
        return MultiCategorical(self.logits(features), self.nvec)


class DiagGaussianHead(nn.Module):
    """Features ``[B, in_dim]`` -> a Gaussian over actions of ``shape``: a linear mean and a
    state-independent ``log_std`` parameter, initialised to 0 (std 1) as in PPO's original code.
    ``squash=True`` gives a ``TanhDiagGaussian`` instead."""

    def __init__(self, in_dim: int, shape: tuple[int, ...], squash: bool = False) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.squash = squash
        self.mean = _policy_layer(in_dim, math.prod(self.shape))
        self.log_std = nn.Parameter(torch.zeros(self.shape))

    def forward(self, features: Tensor) -> DiagGaussian | TanhDiagGaussian:
        mean = self.mean(features).reshape(*features.shape[:-1], *self.shape)
        cls = TanhDiagGaussian if self.squash else DiagGaussian
        log_std = self.log_std
        if log_std.dim() > len(self.shape):  # one log_std per member of a stacked ensemble (rlcore.ensemble)
            log_std = member_rows(log_std, mean.shape[0])
        return cls(mean, log_std, event_ndim=len(self.shape))


_SUPPORTED = ("Discrete (Categorical), Box (DiagGaussian; TanhDiagGaussian with squash=True), "
              "MultiDiscrete with a 1-D nvec (MultiCategorical)")


def make_action_head(action_space: spaces.Space, in_dim: int, squash: bool = False) -> nn.Module:
    """The policy head for ``action_space``: an ``nn.Module`` mapping features ``[B, in_dim]`` to
    an ``ActionDistribution``. Its output layer is orthogonally initialised with gain 0.01.

    ``squash`` (Box only) selects tanh squashing over clipping; see the module docstring.
    """
    unsupported = f"make_action_head: action space {action_space} is not supported. Supported: {_SUPPORTED}."
    if squash and not isinstance(action_space, spaces.Box):
        raise ValueError(f"make_action_head: squash=True applies to Box action spaces only, got {action_space}.")
    if isinstance(action_space, spaces.Discrete):
        if int(action_space.start) != 0:
            raise ValueError(f"{unsupported} A Discrete space must start at 0 (this one starts at "
                             f"{int(action_space.start)}); the head's indices are sent to the env unchanged.")
        return CategoricalHead(in_dim, int(action_space.n))
    if isinstance(action_space, spaces.MultiDiscrete):
        if action_space.nvec.ndim != 1 or np.any(action_space.start != 0):
            raise ValueError(f"{unsupported} A MultiDiscrete space must have a 1-D nvec and start at 0.")
        return MultiCategoricalHead(in_dim, action_space.nvec.tolist())
    if isinstance(action_space, spaces.Box):
        if not np.issubdtype(action_space.dtype, np.floating):
            raise ValueError(f"{unsupported} A Box action space must have a floating dtype, got {action_space.dtype}.")
        return DiagGaussianHead(in_dim, action_space.shape, squash=squash)
    raise ValueError(unsupported)


# ------------------------------------------------------------------ Box action bounds


@functools.lru_cache(maxsize=64)
def _box_bounds(low: bytes, high: bytes, shape: tuple[int, ...], np_dtype: str,
                device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # Keyed by the bounds' bytes (spaces are unhashable), so the host-to-device copy happens
    # once per space and device, not on every env step.
    def to_tensor(raw: bytes) -> Tensor:
        return torch.from_numpy(np.frombuffer(raw, dtype=np_dtype).reshape(shape).copy()).to(device, dtype)

    return to_tensor(low), to_tensor(high)


def _bounds_of(space: spaces.Space, like: Tensor, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(space, spaces.Box):
        raise ValueError(f"{what}: needs a Box action space, got {space}.")
    return _box_bounds(space.low.tobytes(), space.high.tobytes(), space.shape, space.low.dtype.str,
                       like.device, like.dtype)


def clip_action(action: Tensor, space: spaces.Box) -> Tensor:
    """``action`` clipped to the Box's bounds, for sending to the environment.

    Store the unclipped action (and its log-prob) in the rollout: the policy's log-prob is of
    what it sampled. Infinite bounds leave their dimensions unchanged.
    """
    low, high = _bounds_of(space, action, "clip_action")
    return torch.clamp(action, low, high)


def scale_action(action: Tensor, space: spaces.Box) -> Tensor:
    """Map a squashed action in [-1, 1] (``TanhDiagGaussian``) affinely onto ``[low, high]``."""
    low, high = _bounds_of(space, action, "scale_action")
    if not space.is_bounded("both"):
        raise ValueError(f"scale_action: needs finite bounds, got {space}; use clip_action (or no squashing) "
                         "for unbounded dimensions.")
    return low + (action + 1.0) * 0.5 * (high - low)
