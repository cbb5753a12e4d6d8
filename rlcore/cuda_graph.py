"""A training step captured once as a CUDA graph and replayed.

A small network's step (gather a minibatch, loss, backward pass, gradient clipping) is bound by
launching its many small kernels from Python, not by arithmetic; a replay is one launch of the
same kernels, so the numbers are the same. An agent chooses its step function once:

    step = GraphedStep(self._minibatch_step, trainable_parameters) if on_cuda else self._minibatch_step
    loss, stats = step(idx, clip_range)   # then optimizer.step(), eagerly

The step's inputs must be tensors (copied into the graph's own before each replay); its outputs
(and each parameter's `.grad`) live in the graph's memory and are rewritten by every replay, so
read them before the next call. The optimiser step stays outside the graph: its state,
checkpoints and learning-rate schedule are untouched. A replay runs no module hooks, so callers
leave modules with hooks eager (`rlcore.nets.has_hooks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn


class _Capture:
    """One capture of `fn` on the static inputs `inputs`."""

    def __init__(self, fn: Callable[..., Any], inputs: tuple[Tensor, ...], params: list[nn.Parameter]):
        self.inputs = tuple(x.clone() for x in inputs)
        self.params = params
        side = torch.cuda.Stream()  # warm-up off the capture, as torch.cuda.graph's docs ask (lazy initialisations)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        for p in params:  # the capture allocates the gradients in the graph's memory
            p.grad = None
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = fn(*self.inputs)
        self.grads = [p.grad for p in params]

    def fits(self) -> bool:
        """Still wired to the parameters' gradients (a zero_grad that dropped them needs a new capture)."""
        return all(p.grad is g for p, g in zip(self.params, self.grads))

    def __call__(self, *inputs: Tensor) -> Any:
        for static, x in zip(self.inputs, inputs):
            static.copy_(x)
        self.graph.replay()
        return self.outputs


class GraphedStep:
    """`fn(*inputs)`, captured as a CUDA graph at the first call (and again whenever the gradients
    of `params` were dropped since), replayed at every call. `fn` must leave the gradients of
    `params` set (it runs the backward pass); it must not change shapes between calls."""

    def __init__(self, fn: Callable[..., Any], params: Iterable[nn.Parameter]):
        self.fn, self.params = fn, [p for p in params if p.requires_grad]
        self._capture: _Capture | None = None

    def __call__(self, *inputs: Tensor) -> Any:
        if self._capture is None or not self._capture.fits():
            self._capture = _Capture(self.fn, inputs, self.params)
        return self._capture(*inputs)
