"""rlcore.nets: target-network updates (hard copy, Polyak) and torsos."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rlcore.nets import NatureCNN, hard_update, make_torso, polyak_update


def _net(weight: float, bias: float, running_mean: float) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(weight)
        net[0].bias.fill_(bias)
        net[1].weight.fill_(1.0)
        net[1].bias.fill_(0.0)
        net[1].running_mean.fill_(running_mean)
    return net


def test_hard_update_copies_parameters_and_buffers_exactly():
    target, online = _net(2.0, -1.0, 0.0), _net(12.0, 1.0, 5.0)
    hard_update(target, online)
    for (name, t), o in zip(target.state_dict().items(), online.state_dict().values()):
        assert torch.equal(t, o), name
    # A copy, not shared storage: training the online net later must not move the target.
    with torch.no_grad():
        online[0].weight.add_(1.0)
    assert torch.equal(target[0].weight, torch.full((1, 2), 12.0))


@pytest.mark.parametrize("tau, weight, bias", [(0.1, 3.0, -0.8), (1.0, 12.0, 1.0)])


def test_polyak_update_by_hand(tau, weight, bias):
    # (1 - tau) * target + tau * online: 0.9 * 2 + 0.1 * 12 = 3.0 and 0.9 * -1 + 0.1 * 1 = -0.8.
    target, online = _net(2.0, -1.0, 0.0), _net(12.0, 1.0, 5.0)
    polyak_update(target, online, tau)
    assert torch.allclose(target[0].weight, torch.full((1, 2), weight))
    assert torch.allclose(target[0].bias, torch.full((1,), bias))
    assert torch.equal(target[1].running_mean, torch.full((1,), 5.0))  # buffers are copied, not averaged
    assert torch.equal(online[0].weight, torch.full((1, 2), 12.0))  # the online net is untouched


@pytest.mark.parametrize("tau", [0.1, 1.0])


def test_polyak_update_every_parameter(tau):
    torch.manual_seed(0)
    target, online = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), nn.Sequential(
        nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(target, online, tau)
    for t, t0, o in zip(target.parameters(), before, online.parameters()):
        assert torch.allclose(t, (1 - tau) * t0 + tau * o, atol=1e-7)


def test_nature_cnn_on_uint8_frames():
    torch.manual_seed(0)
    cnn = NatureCNN(4)
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    out = cnn(frames)
    assert out.shape == (2, 512) and cnn.out_dim == 512
    assert torch.allclose(out, cnn(frames.float() / 255.0))  # bytes are scaled to [0, 1] inside


def test_make_torso_picks_cnn_or_mlp():
    image = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    vector = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert isinstance(make_torso(image, (64,)), NatureCNN)
    mlp = make_torso(vector, (32, 16))
    assert mlp.out_dim == 16 and mlp(torch.zeros(5, 4)).shape == (5, 16)


def test_make_torso_refuses_discrete_observations():
    with pytest.raises(ValueError, match=r"Discrete\(5\).*not supported.*Box.*one-hot"):
        make_torso(gym.spaces.Discrete(5), (64,))


def test_channels_last_images_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"\(64, 64, 3\) look channels-last.*moveaxis"):
        make_torso(gym.spaces.Box(0, 255, (64, 64, 3), dtype=np.uint8), (64,))
