"""The actor-critic network shared by the policy-gradient agents (REINFORCE, A2C, PPO).

Agents talk to a policy only through `act`, `value`, `evaluate_actions`, `to_env` and
`mode`, so any module with those methods (a language model with a value head, later)
plugs into the same losses and rollout loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import torch
from torch import nn

from rlcore.distributions import ActionDistribution, clip_action, make_action_head, scale_action
from rlcore.nets import FlatMLP, has_hooks, is_image_space, make_torso

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _orthogonal_init(module: nn.Module, gain: float) -> None:
    # Orthogonal weights, zero biases (PPO implementation details #2): sqrt(2) for hidden layers.
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


class ActorCritic(nn.Module):
    """Actor and critic. Vector observations get two separate MLP torsos (no shared layers, as
    in the PPO paper's MuJoCo setting); images share one Nature CNN between both heads."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden_sizes: tuple[int, ...] = (64, 64),
                 activation: str = "tanh", squash: bool = False, ortho_init: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation = {activation!r} is invalid: must be one of {sorted(ACTIVATIONS)}.")
        act = ACTIVATIONS[activation]
        self.action_space = action_space
        self.squash = squash
        self.actor_torso = make_torso(observation_space, hidden_sizes, act)
        self.shared = is_image_space(observation_space)
        self.critic_torso = self.actor_torso if self.shared else make_torso(observation_space, hidden_sizes, act)
        if ortho_init:
            _orthogonal_init(self.actor_torso, math.sqrt(2))
            _orthogonal_init(self.critic_torso, math.sqrt(2))
        self.actor_head = make_action_head(action_space, self.actor_torso.out_dim, squash=squash)
        self.critic_head = nn.Linear(self.critic_torso.out_dim, 1)
        if ortho_init:
            _orthogonal_init(self.critic_head, 1.0)

    def distribution(self, obs: torch.Tensor) -> ActionDistribution:
        return self.actor_head(self.actor_torso(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic_head(self.critic_torso(obs)).squeeze(-1)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sampled action, its log-probability, V(obs)); one torso pass when they are shared."""
        if self.shared:
            features = self.actor_torso(obs)
            dist, value = self.actor_head(features), self.critic_head(features).squeeze(-1)
        else:
            dist, value = self.distribution(obs), self.value(obs)
        return sampled(dist, value)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probability of `actions`, entropy, V(obs)) under the current parameters."""
        if self.shared:
            features = self.actor_torso(obs)
            dist, value = self.actor_head(features), self.critic_head(features).squeeze(-1)
        else:
            dist, value = self.distribution(obs), self.value(obs)
        return dist.log_prob(actions), dist.entropy(), value

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.distribution(obs).mode()

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """The action the environment receives: bounded Box actions are clipped (or, when squashed,
        scaled from (-1, 1) onto the bounds); the rollout keeps the unclipped sample."""
        if isinstance(self.action_space, gym.spaces.Box):
            return scale_action(action, self.action_space) if self.squash else clip_action(action, self.action_space)
        return action


def sampled(dist: ActionDistribution, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What `act` returns: an action sampled from `dist`, its log-probability, and `value`."""
    action = dist.sample()
    return action, dist.log_prob(action), value


_ACTIVATION_FUNCTIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu}


@torch.no_grad()
def side_by_side_act(policy: nn.Module) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]] | None:
    """`policy.act` for one rollout, with the actor's and critic's MLP torsos run as one MLP twice as
    wide: the first layers stacked, the later ones block-diagonal, so each layer is one matmul for
    both and the module calls are skipped (on a CPU small networks cost per call, not per flop).
    The outputs are the torsos' up to float rounding (each sums the same products, plus exact
    zeros, in another order).

    The weights are copied now, without gradients: use it while they do not change (a rollout).
    None where it does not apply: shared or image torsos, stacked seeds, other layers, and torsos
    with module hooks (which the modules' own calls would run)."""
    if type(policy) is not ActorCritic or policy.shared:
        return None
    actor, critic = policy.actor_torso, policy.critic_torso
    if not (type(actor) is FlatMLP and type(critic) is FlatMLP and len(actor.net) == len(critic.net) > 0):
        return None
    if has_hooks(actor) or has_hooks(critic):
        return None
    modules = list(zip(actor.net, critic.net))
    layers = []
    for i in range(0, len(modules), 2):  # Linear, activation, Linear, activation, ... (the last may be bare)
        (a, c), (a_fn, c_fn) = modules[i], modules[i + 1] if i + 1 < len(modules) else (None, None)
        if not (type(a) is type(c) is nn.Linear and a.bias is not None and c.bias is not None
                and type(a_fn) is type(c_fn)):
            return None
        if a_fn is not None and type(a_fn) not in _ACTIVATION_FUNCTIONS:
            return None
        weight = torch.cat((a.weight, c.weight)) if i == 0 else torch.block_diag(a.weight, c.weight)
        layers.append((weight.t().contiguous(), torch.cat((a.bias, c.bias)),
                       _ACTIVATION_FUNCTIONS[type(a_fn)] if a_fn is not None else None))
    width = actor.out_dim  # the actor's features come first

    def act(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = obs.flatten(1).float()
        for weight, bias, activation_fn in layers:
            h = torch.addmm(bias, h, weight)
            h = activation_fn(h) if activation_fn is not None else h
        return sampled(policy.actor_head(h[:, :width]), policy.critic_head(h[:, width:]).squeeze(-1))

    return act
