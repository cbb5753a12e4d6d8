"""What the policy-gradient agents (REINFORCE, A2C, PPO) share: their config fields, the
actor-critic they build, the acting step of a rollout, collecting one, and `predict`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.base import Agent, AgentConfig, obs_to_tensor
from envs.core import VecEnv
from rlcore.config import check
from rlcore.policies import ACTIVATIONS, ActorCritic, side_by_side_act
from rlcore.rollout import Act, RolloutBuffer, collect


@dataclass
class OnPolicyConfig(AgentConfig):
    """Settings every policy-gradient agent has, besides `AgentConfig`'s."""

    n_steps: int = 128
    """Steps per copy in each rollout."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight; the value loss is 0.5 * MSE (CleanRL's), so SB3's (plain MSE) vf_coef c is 2c here."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """MLP widths of the actor and of the critic (image observations use a shared Nature CNN)."""
    activation: str = "tanh"
    """Hidden activation: tanh or relu."""
    ortho_init: bool = True
    """Orthogonal initialisation (gain sqrt(2) hidden, 0.01 policy output, 1 value output)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian policies."""
    squash_actions: bool = False
    """Box actions: tanh-squash instead of clipping the Gaussian sample."""
    compile: bool = False
    """torch.compile the policy's acting step; on CUDA with CUDA graphs (mode="reduce-overhead")."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "n_steps", self.n_steps >= 1, ">= 1")
        check(self, "activation", self.activation in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}")


def make_actor_critic(env: VecEnv, config: OnPolicyConfig) -> ActorCritic:
    """The actor-critic `config` describes for `env`'s spaces, on the config's device."""
    policy = ActorCritic(env.single_observation_space, env.single_action_space, config.hidden_sizes,
                         config.activation, config.squash_actions, config.ortho_init).to(config.device)
    if isinstance(env.single_action_space, gym.spaces.Box):
        with torch.no_grad():
            policy.actor_head.log_std.fill_(config.log_std_init)
    return policy


class ActingPolicy(Protocol):
    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


def compiled_act(policy: ActingPolicy, device: torch.device) -> Act:
    """`policy.act` compiled once (`compile=True`). On CUDA, mode "reduce-overhead" replays it as one
    CUDA graph whose outputs live in the graph's memory until the next call: safe in a rollout,
    which copies them into the buffer at once."""
    return torch.compile(policy.act, mode="reduce-overhead" if device.type == "cuda" else "default", dynamic=False)


def acting_step(policy: ActingPolicy, compiled: Act | None = None) -> Act:
    """The acting step of one rollout: the compiled one when there is one, else the actor's and
    critic's MLPs side by side where they fit (a copy of the weights made now), else `policy.act`."""
    return compiled or side_by_side_act(policy) or policy.act


class PredictingPolicy(Protocol):
    def mode(self, obs: torch.Tensor) -> torch.Tensor: ...

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution: ...

    def to_env(self, action: torch.Tensor) -> torch.Tensor: ...


def policy_predict(policy: PredictingPolicy, obs: torch.Tensor | np.ndarray, space: gym.Space, device: torch.device,
                   deterministic: bool) -> torch.Tensor | np.ndarray:
    """The action the environment receives: the mode of the distribution when deterministic, else a
    sample. A batch or one unbatched observation; numpy in, numpy out."""
    obs_t, unbatched, was_numpy = obs_to_tensor(obs, space, device)
    with torch.no_grad():
        action = policy.mode(obs_t) if deterministic else policy.distribution(obs_t).sample()
        action = policy.to_env(action)
    action = action[0] if unbatched else action
    return action.cpu().numpy() if was_numpy else action


class PolicyGradientAgent(Agent):
    """The base of REINFORCE, A2C and PPO: a `policy` with `act`, `value`, `evaluate_actions`, `mode`
    and `to_env`, trained from rollouts in `buffer`."""

    action_spaces = (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete)
    checkpoint_state = ("policy", "optimizer", "nan_guard")
    policy: nn.Module
    buffer: RolloutBuffer
    compiled_act: Act | None = None

    def predict(self, obs: torch.Tensor | np.ndarray, deterministic: bool = True) -> torch.Tensor | np.ndarray:
        """Actions the environment receives for a batch of observations (or one unbatched one)."""
        return policy_predict(self.policy, obs, self.env.single_observation_space, self.device, deterministic)

    def collect_rollout(self) -> None:
        """`buffer.num_steps` steps of every copy into `buffer` (`rlcore.rollout.collect`); the NaN guard
        sees the rollout's observations and rewards."""
        start = self.global_step
        self.obs, _ = collect(self.env, self.policy, self.buffer, self.obs, acting_step(self.policy, self.compiled_act))
        self.global_step += self.buffer.num_steps * self.env.num_envs
        self.nan_guard.record_rollout(self.buffer.obs, self.buffer.rewards, start, self.env.num_envs,
                                      self.buffer.final_values)
