"""The actor-critic network shared by the policy-gradient agents (REINFORCE, A2C, PPO).

Agents talk to a policy only through `act`, `value`, `evaluate_actions`, `to_env` and
`mode`, so any module with those methods (a language model with a value head, later)
plugs into the same losses and rollout loop.
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import nn

from rlcore.distributions import ActionDistribution, clip_action, make_action_head, scale_action
from rlcore.nets import is_image_space, make_torso

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
        action = dist.sample()
        return action, dist.log_prob(action), value

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
