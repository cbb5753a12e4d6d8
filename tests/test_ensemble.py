"""rlcore.ensemble: stacked members compute exactly what the separate networks compute."""

from __future__ import annotations

import copy

import gymnasium as gym
import pytest
import torch
from torch import nn

from rlcore.ensemble import (
    clip_grad_norm_per_member,
    load_member_state_dict,
    member_state_dict,
    stack_modules,
)
from rlcore.policies import ActorCritic
from rlcore.rollout import RolloutBuffer, normalize_advantages

OBS = gym.spaces.Box(-1.0, 1.0, (3,))
SPACES = [gym.spaces.Discrete(4), gym.spaces.Box(-2.0, 2.0, (2,)), gym.spaces.MultiDiscrete([2, 3])]


def _members(action_space: gym.Space, n: int = 3) -> list[ActorCritic]:
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        net = ActorCritic(OBS, action_space, hidden_sizes=(8, 8))
        if isinstance(action_space, gym.spaces.Box):
            with torch.no_grad():
                net.actor_head.log_std.fill_(-0.1 * seed)  # members must keep their own log-std
        nets.append(net)
    return nets


@pytest.mark.parametrize("action_space", SPACES, ids=["discrete", "box", "multidiscrete"])
def test_stacked_members_match_separate_networks_forward_and_backward(action_space: gym.Space) -> None:
    nets = _members(action_space)
    stacked = stack_modules(nets)
    obs = torch.randn(3, 5, 3)  # [member, rows, obs]
    with torch.no_grad():
        actions = torch.stack([net.distribution(o).sample() for net, o in zip(nets, obs)])
    logp, ent, value = stacked.evaluate_actions(obs.reshape(15, 3), actions.reshape(15, *actions.shape[2:]))
    # A loss summed over members gives each member the gradient of its own loss.
    (logp * value + ent).view(3, -1).mean(1).sum().backward()
    for m, net in enumerate(nets):
        ref_logp, ref_ent, ref_value = net.evaluate_actions(obs[m], actions[m])
        torch.testing.assert_close(logp.view(3, -1)[m], ref_logp)
        torch.testing.assert_close(ent.view(3, -1)[m], ref_ent)
        torch.testing.assert_close(value.view(3, -1)[m], ref_value)
        (ref_logp * ref_value + ref_ent).mean().backward()
    plain_grads = member_state_dict(_grads_as_module(stacked), 1)
    for name, param in nets[1].named_parameters():
        torch.testing.assert_close(plain_grads[name], param.grad)


def _grads_as_module(stacked: nn.Module) -> nn.Module:
    """A copy of ``stacked`` whose parameters hold its gradients (to unstack them like weights)."""
    copy_ = copy.deepcopy(stacked)
    with torch.no_grad():
        for p, src in zip(copy_.parameters(), stacked.parameters(), strict=True):
            p.copy_(src.grad if src.grad is not None else torch.zeros_like(src))
    return copy_


def test_member_state_dict_round_trips_into_plain_networks() -> None:
    nets = _members(SPACES[1])
    stacked = stack_modules(nets)
    for m, net in enumerate(nets):
        state = member_state_dict(stacked, m)
        assert state.keys() == net.state_dict().keys()
        for key, value in net.state_dict().items():
            assert torch.equal(state[key], value)
    # Writing a plain network into a member changes that member only.
    fresh = ActorCritic(OBS, SPACES[1], hidden_sizes=(8, 8))
    load_member_state_dict(stacked, 2, fresh.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(member_state_dict(stacked, 2).values(), fresh.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(member_state_dict(stacked, 0).values(), nets[0].state_dict().values()))


def test_clip_grad_norm_per_member_matches_clipping_each_member_alone() -> None:
    nets = _members(SPACES[0])
    stacked = stack_modules(nets)
    obs = torch.randn(3 * 4, 3) * 50  # large inputs: gradients well above the clip
    (stacked.value(obs) * torch.arange(12.0)).sum().backward()
    norms = clip_grad_norm_per_member(stacked.parameters(), 0.5, members=3)
    for m, net in enumerate(nets):
        (net.value(obs[4 * m: 4 * (m + 1)]) * torch.arange(4 * m, 4 * m + 4.0)).sum().backward()
        ref_norm = nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        torch.testing.assert_close(norms[m], ref_norm)
        clipped = member_state_dict(_grads_as_module(stacked), m)
        for name, param in net.named_parameters():
            torch.testing.assert_close(clipped[name], param.grad if param.grad is not None else torch.zeros_like(param))


@pytest.mark.parametrize("scale", [50.0, 1e-4])  # gradients above the clip, and below it (left as they are)
def test_clip_grad_norm_with_one_member_is_torchs_clip(scale: float) -> None:
    net, twin = _members(SPACES[0])[:2]
    twin.load_state_dict(net.state_dict())
    obs = torch.randn(8, 3)
    for module in (net, twin):
        (module.value(obs) * torch.arange(8.0)).sum().mul(scale).backward()
    norm = clip_grad_norm_per_member(net.parameters(), 0.5, members=1)
    assert (norm > 0.5).item() == (scale > 1)
    torch.testing.assert_close(norm, nn.utils.clip_grad_norm_(twin.parameters(), 0.5).reshape(1))
    for p, q in zip(net.parameters(), twin.parameters()):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad)


def test_stack_refuses_layers_without_a_member_form() -> None:
    with pytest.raises(ValueError, match="Conv2d"):
        stack_modules([nn.Sequential(nn.Conv2d(1, 2, 3)) for _ in range(2)])


def test_minibatches_per_member_permute_each_members_own_transitions() -> None:
    T, members, per = 4, 3, 2
    buf = RolloutBuffer(T, members * per, (1,), torch.float32, (), torch.long, "cpu")
    for t in range(T):
        # obs encodes (t, env): member of env e is e // per.
        obs = torch.tensor([[t * 100.0 + e] for e in range(members * per)])
        buf.add(obs=obs, actions=torch.zeros(members * per, dtype=torch.long), logprobs=torch.zeros(members * per),
                values=torch.zeros(members * per), rewards=torch.zeros(members * per),
                terminated=torch.zeros(members * per, dtype=torch.bool),
                truncated=torch.zeros(members * per, dtype=torch.bool), final_values=torch.zeros(members * per))
    buf.compute_returns_and_advantages(torch.zeros(members * per), 0.99, 0.95)
    seen: list[list[float]] = [[] for _ in range(members)]
    for batch in buf.minibatches(2, members=members):
        rows = batch.obs.view(members, -1)  # member-major: an equal chunk of each member
        for m in range(members):
            envs = rows[m].long() % 100
            assert ((envs // per) == m).all()
            seen[m] += rows[m].tolist()
    for m in range(members):  # every transition of every member exactly once per epoch
        assert sorted(seen[m]) == sorted(t * 100.0 + e for t in range(T) for e in range(m * per, (m + 1) * per))
    with pytest.raises(ValueError, match="members"):
        next(iter(buf.minibatches(2, members=4)))


def test_normalize_advantages_along_a_dimension() -> None:
    adv = torch.tensor([[1.0, 2.0, 3.0], [10.0, 30.0, 50.0]])
    out = normalize_advantages(adv, dim=1)
    for row, ref in zip(out, adv):
        torch.testing.assert_close(row, normalize_advantages(ref))
