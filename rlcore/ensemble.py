"""Several independent networks of one architecture, run as one (many seeds in one process).

``stack_modules([net_0, ..., net_{S-1}])`` returns one module whose parameters hold all S
members stacked on a leading dimension. Its input is a batch whose rows are member-major:
rows ``[m * B, (m + 1) * B)`` belong to member ``m``. Each ``nn.Linear`` becomes an
``EnsembleLinear`` (one batched matmul for all members), so S members cost the same number of
operations as one: on a CPU, where small networks are bound by per-operation overhead, 16
seeds train in little more time than one. Members never mix: every output row depends only on
its own member's parameters, and a loss summed over members gives each its own gradient.

This replaces ``torch.func.vmap`` over stacked parameters, whose backward pass was far slower
than a plain one for small MLPs on a CPU (docs/performance.md).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


class EnsembleLinear(nn.Module):
    """S ``nn.Linear`` layers applied to S consecutive equal blocks of the batch rows."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        # [S, in, out] and [S, 1, out]: the layouts torch.baddbmm takes, so forward is one op.
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).unsqueeze(1))

    def forward(self, x: Tensor) -> Tensor:
        members, in_dim = self.weight.shape[0], self.weight.shape[1]
        y = torch.baddbmm(self.bias, x.reshape(members, -1, in_dim), self.weight)
        return y.reshape(*x.shape[:-1], y.shape[-1])


def member_rows(param: Tensor, rows: int) -> Tensor:
    """A stacked per-member tensor ``[S, ...]`` repeated to ``rows`` member-major batch rows."""
    return param.repeat_interleave(rows // param.shape[0], dim=0)


def stack_modules(modules: Sequence[nn.Module]) -> nn.Module:
    """One module computing all of ``modules`` (same architecture, own parameters) at once.

    Linear layers become ``EnsembleLinear``; any other parameter ``p`` becomes ``[S, *p.shape]``
    and the module using it must expand it to its rows (``member_rows``). Layers that mix rows
    or have no batched form here (convolutions, normalisation) are refused.
    """
    if not modules:
        raise ValueError("stack_modules needs at least one module.")
    stacked = copy.deepcopy(modules[0])
    for name, sub in list(stacked.named_modules()):
        if isinstance(sub, nn.Linear):
            parent, _, attr = name.rpartition(".")
            setattr(stacked.get_submodule(parent), attr, EnsembleLinear([m.get_submodule(name) for m in modules]))
        elif any(True for _ in sub.parameters(recurse=False)) and not isinstance(sub, EnsembleLinear):
            if not sub.__class__.__module__.startswith("rlcore"):
                raise ValueError(f"stack_modules: {type(sub).__name__} ({name}) has no per-member form; only MLP "
                                 "networks (Linear layers and per-member parameters of rlcore modules) can be stacked.")
            for pname, _ in list(sub.named_parameters(recurse=False)):
                values = [getattr(m.get_submodule(name), pname).detach() for m in modules]
                setattr(sub, pname, nn.Parameter(torch.stack(values)))
    return stacked


def member_state_dict(stacked: nn.Module, member: int) -> dict[str, Tensor]:
    """The ``state_dict`` member ``member`` would have as a plain (unstacked) module."""
    return {key: unstack_tensor(stacked, key, value, member) for key, value in stacked.state_dict().items()}


def unstack_tensor(stacked: nn.Module, key: str, value: Tensor, member: int) -> Tensor:
    """Member ``member``'s slice of the stacked tensor ``value`` stored under ``key`` of ``stacked``
    (a parameter, or optimiser state shaped like one), in the plain module's layout."""
    owner, _, attr = key.rpartition(".")
    if isinstance(stacked.get_submodule(owner), EnsembleLinear):
        return value[member].t().contiguous() if attr == "weight" else value[member, 0].clone()
    return value[member].clone()


def load_member_state_dict(stacked: nn.Module, member: int, state: dict[str, Tensor]) -> None:
    """Write a plain module's ``state_dict`` into member ``member`` of ``stacked``."""
    with torch.no_grad():
        for key, target in stacked.state_dict(keep_vars=True).items():
            owner, _, attr = key.rpartition(".")
            value = state[key]
            if isinstance(stacked.get_submodule(owner), EnsembleLinear):
                value = value.t() if attr == "weight" else value.unsqueeze(0)
            target[member].copy_(value)


def clip_grad_norm_per_member(parameters: Iterable[nn.Parameter], max_norm: float, members: int) -> Tensor:
    """``nn.utils.clip_grad_norm_`` applied to each member separately (every parameter has the member
    dimension first); returns the ``[S]`` norms before clipping. With one member it is the same clip."""
    params = [p for p in parameters if p.grad is not None]
    if members == 1:  # clip_grad_norm_'s own ops without its per-call grouping: half its time on small networks
        grads = [p.grad for p in params]
        if not grads:  # nothing to clip; clip_grad_norm_ returns 0 then too
            return torch.zeros(1)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
        return norm.reshape(1)
    sq = torch.stack([p.grad.reshape(members, -1).square().sum(1) for p in params]).sum(0)
    norms = sq.sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # the same epsilon as clip_grad_norm_
    for p in params:
        p.grad.mul_(coef.view(members, *([1] * (p.dim() - 1))))
    return norms
