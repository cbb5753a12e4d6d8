"""Deterministic evaluation of a trained agent over whole episodes."""

from __future__ import annotations

from typing import Protocol

import torch


class Policy(Protocol):
    def predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor: ...

    def make_eval_env(self, env_id: str | None = None, num_envs: int = 1, seed: int | None = None): ...


def evaluate(agent: Policy, env_id_or_env, episodes: int = 20, seed: int | None = None,
             deterministic: bool = True, num_envs: int | None = None) -> tuple[float, float]:
    """Mean and standard deviation of the episodic return over `episodes` full episodes.

    A string builds the environment the way the agent was trained (same wrappers, frozen
    observation statistics). Returns come from the episode-statistics wrapper, so they are
    the environment's own score even when training clipped rewards. Each copy runs a fixed
    share of the episodes, so short episodes are not over-counted (as in SB3's evaluate_policy).
    """
    if episodes < 1:
        raise ValueError(f"episodes = {episodes} is invalid: must be >= 1.")
    if isinstance(env_id_or_env, str):
        env = agent.make_eval_env(env_id_or_env, num_envs=num_envs or min(episodes, 8), seed=seed)
        owns_env = True
    else:
        env, owns_env = env_id_or_env, False
    try:
        n = env.num_envs
        targets = torch.tensor([(episodes + i) // n for i in range(n)], device=env.device)
        counts = torch.zeros(n, dtype=torch.long, device=env.device)
        returns: list[torch.Tensor] = []
        obs, _ = env.reset(seed=seed)
        while bool((counts < targets).any()):
            with torch.no_grad():
                action = agent.predict(obs, deterministic=deterministic)
            obs, _, terminated, truncated, info = env.step(action)
            done = (terminated | truncated) & (counts < targets)
            if bool(done.any()):
                returns.append(info["episode_return"][done])
                counts += done.long()
        all_returns = torch.cat(returns).double()
        std = all_returns.std(unbiased=False) if len(all_returns) > 1 else torch.zeros(())
        return float(all_returns.mean()), float(std)
    finally:
        if owns_env:
            env.close()
