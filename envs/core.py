"""The batched environment contract every layer above speaks.

Auto-reset convention (one for the whole project, "same step"): when copy ``i`` ends an
episode at ``step``, the returned ``obs[i]`` is already the first observation of its next
episode, and ``info["final_obs"][i]`` is the true last observation of the finished one.
``info["final_obs"]`` is a full ``[N, ...]`` tensor (equal to ``obs`` where no episode
ended), so bootstrapping needs no host sync and no per-env bookkeeping:
``next_obs = info["final_obs"]`` is always the observation the transition led to.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch


class VecEnv:
    """``num_envs`` copies of one environment, stepped as one, with tensors on ``device``.

    ``step`` returns ``(obs, reward, terminated, truncated, info)`` with ``reward`` float32
    ``[N]``, ``terminated``/``truncated`` bool ``[N]`` kept separate, and
    ``info["final_obs"]`` as described in the module docstring.
    """

    num_envs: int
    device: torch.device
    single_observation_space: gym.Space
    single_action_space: gym.Space
    env_id: str
    resumed_mid_episode: bool = False
    """Set by `load_state_dict` when the saved episodes continue (the saved observation is valid)."""

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError  # abstract

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        raise NotImplementedError  # abstract

    def close(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Statistics a checkpoint must keep (e.g. observation normalisation)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    @property
    def unwrapped(self) -> "VecEnv":
        return self

    def find(self, cls: type) -> "VecEnv | None":
        """The first layer of type ``cls`` in the wrapper chain (outermost first), or None."""
        env: VecEnv = self
        while not isinstance(env, cls):
            if not isinstance(env, VecEnvWrapper):
                return None
            env = env.env
        return env

    def __enter__(self) -> "VecEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VecEnvWrapper(VecEnv):
    """Wraps a VecEnv; forwards everything it does not override."""

    def __init__(self, env: VecEnv):
        self.env = env
        self.num_envs = env.num_envs
        self.device = env.device
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.env_id = env.env_id

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.env.reset(seed=seed)

    def step(self, action: torch.Tensor):
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state.get("env", {}))

    @property
    def unwrapped(self) -> VecEnv:
        return self.env.unwrapped
