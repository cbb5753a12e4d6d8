"""rlcore.cuda_graph: a training step replayed from a CUDA graph gives the eager step's numbers."""

from __future__ import annotations

import pytest
import torch

from rlcore.cuda_graph import GraphedStep

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_replays_match_eager_steps_and_a_dropped_gradient_recaptures():
    torch.manual_seed(0)
    eager, graphed = torch.nn.Linear(8, 1).cuda(), torch.nn.Linear(8, 1).cuda()
    graphed.load_state_dict(eager.state_dict())
    data = torch.randn(64, 8, device="cuda")

    def step(net: torch.nn.Module, idx: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        loss = (net(data.index_select(0, idx)) * scale).square().mean()
        loss.backward()
        return loss.detach()

    replayed = GraphedStep(lambda idx, scale: step(graphed, idx, scale), graphed.parameters())
    captures = []
    for i in range(4):
        idx, scale = torch.randperm(64, device="cuda")[:16], torch.full((), 1.0 + i, device="cuda")
        eager.zero_grad(set_to_none=True)
        expected = step(eager, idx, scale)
        got = replayed(idx, scale)
        captures.append(replayed._capture)
        torch.testing.assert_close(got, expected)
        for a, b in zip(eager.parameters(), graphed.parameters()):
            torch.testing.assert_close(b.grad, a.grad)
        if i == 2:
            for p in graphed.parameters():
                p.grad = None  # e.g. an optimiser's zero_grad(set_to_none=True)
    assert captures[0] is captures[1] is captures[2] and captures[3] is not captures[2]  # captured again
