"""Network torsos and target-network updates shared by every agent."""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import nn
from torch.nn.modules import module as nn_module  # where nn.Module keeps the global hooks

from rlcore.ensemble import stack_modules


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int | None = None, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers with `activation` between them; no activation after the last layer."""
    layers: list[nn.Module] = []
    dim = in_dim
    for h in hidden:
        layers += [nn.Linear(dim, h), activation()]
        dim = h
    if out_dim is not None:
        layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class NatureCNN(nn.Module):
    """The convolutional torso of Mnih et al. 2015 (Nature DQN) for [C, 84, 84] frames.

    uint8 frames are scaled to [0, 1] here, so buffers can keep them as bytes.
    """

    def __init__(self, in_channels: int, features: int = 512, height: int = 84, width: int = 84):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, in_channels, height, width)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, features), nn.ReLU())
        self.out_dim = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return self.fc(self.convs(x))


class FlatMLP(nn.Module):
    """An MLP torso over flattened observations (any dtype, any rank)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.net = mlp(in_dim, hidden, activation=activation)
        self.out_dim = hidden[-1] if hidden else in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1).float())


class Critics(nn.Module):
    """`n` independent Q-networks Q_i(obs, action) as one stacked module (`rlcore.ensemble`): one batched
    pass scores a batch under all of them, so twin critics cost the operations of one."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], n: int = 2):
        super().__init__()
        self.n = n
        self.q = stack_modules([mlp(obs_dim + action_dim, hidden, 1) for _ in range(n)])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[n, B]``: every critic's value of each (observation, action) row."""
        x = torch.cat((obs.flatten(1).float(), action), 1)
        return self.q(x.repeat(self.n, 1)).view(self.n, -1)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module,
                   max_grad_norm: float | None = None) -> None:
    """One step on `loss`: fresh gradients, the global-norm clip of `module`'s when `max_grad_norm` is given."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm, foreach=True)
    optimizer.step()


def has_hooks(module: nn.Module) -> bool:
    """Whether calling `module` would run hooks (its own, its submodules' or global ones): code that
    computes its function without calling it (a fused pass, a replayed CUDA graph) must not then."""
    if any((nn_module._global_forward_hooks, nn_module._global_forward_pre_hooks, nn_module._global_backward_hooks,
            nn_module._global_backward_pre_hooks)):
        return True
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
               for m in module.modules())


def is_image_space(space: gym.Space) -> bool:
    """Channel-first image observations: uint8 with three dimensions (frame-stacked Atari: [4, 84, 84])."""
    return isinstance(space, gym.spaces.Box) and space.dtype == "uint8" and len(space.shape) == 3


def make_torso(observation_space: gym.Space, hidden: tuple[int, ...], activation: type[nn.Module] = nn.ReLU) -> nn.Module:
    """Nature CNN for images, an MLP for everything else. The torso exposes `out_dim`."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(
            f"Observation space {observation_space} is not supported: agents here take Box observations. "
            "Flatten or one-hot the observation with a gymnasium wrapper first."
        )
    if is_image_space(observation_space):
        c, h, w = observation_space.shape
        if c > 16 and w <= 4:  # e.g. (64, 64, 3): a conv layer would read 64 channels of 3 pixels each
            raise ValueError(
                f"Image observations {observation_space.shape} look channels-last (height, width, channels); the CNN "
                "takes channels first. Wrap the environment with gymnasium.wrappers.TransformObservation that moves "
                "the last axis first (np.moveaxis(obs, -1, 0)), with the matching Box space.")
        return NatureCNN(c, height=h, width=w)
    return FlatMLP(math.prod(observation_space.shape), hidden, activation)


@torch.no_grad()
def hard_update(target: nn.Module, online: nn.Module) -> None:
    """Copy every parameter and buffer of `online` into `target`."""
    target.load_state_dict(online.state_dict())


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, in place (one fused op per tensor list)."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_lerp_(t_params, o_params, tau)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)
