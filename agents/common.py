"""Plumbing every agent composes: building environments, checking spaces, run directories,
and the parts of a checkpoint that are not the agent's own networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs
from envs.core import VecEnv
from envs.wrappers import ClipReward, ObservationNormalization
from rlcore.logger import run_name
from rlcore.seeding import rng_state, set_rng_state

# Which agents take which action spaces; used in the error for a space an agent cannot handle.
AGENT_ACTION_SPACES = {
    "dqn": "Discrete",
}


def check_action_space(algo: str, space: gym.Space, allowed: tuple[type, ...]) -> None:
    if not isinstance(space, allowed):
        fits = [name for name, kinds in AGENT_ACTION_SPACES.items() if type(space).__name__ in kinds]
        hint = f"Agents that fit: {', '.join(fits)}." if fits else "No agent here handles it yet."
        raise ValueError(
            f"{algo.upper()} needs a {' or '.join(a.__name__ for a in allowed)} action space, "
            f"but the environment has {space}. {hint}")


def make_training_env(env_id: str, cfg: Any) -> VecEnv:
    env = envs.make(env_id, num_envs=cfg.num_envs, seed=cfg.seed, device=cfg.device, normalize_obs=cfg.normalize_obs)
    return ClipReward(env) if getattr(cfg, "clip_reward", False) else env


def make_eval_env(train_env: VecEnv, env_id: str, cfg: Any, num_envs: int = 1, seed: int | None = None) -> VecEnv:
    """Same wrappers as training, without reward clipping, and with observation statistics copied and frozen."""
    env = envs.make(env_id, num_envs=num_envs, seed=seed, device=cfg.device, normalize_obs=cfg.normalize_obs)
    source, target = train_env.find(ObservationNormalization), env.find(ObservationNormalization)
    if source is not None and target is not None:
        target.load_state_dict(source.state_dict())
        target.training = False
    return env


def obs_to_tensor(obs: torch.Tensor | np.ndarray, space: gym.Space, device: torch.device) -> tuple[torch.Tensor, bool, bool]:
    """(batched tensor on device, whether the input was one unbatched observation, whether it was numpy)."""
    was_numpy = not isinstance(obs, torch.Tensor)
    t = torch.as_tensor(np.asarray(obs) if was_numpy else obs, device=device)
    if t.dtype == torch.float64:
        t = t.float()
    unbatched = tuple(t.shape) == tuple(space.shape)
    return (t.unsqueeze(0) if unbatched else t), unbatched, was_numpy


def resolve_run_dir(run_dir: str | Path | None, current: Path | None, env_id: str, algo: str, seed: int) -> Path:
    """An explicit directory, else the one a loaded agent came from, else a new `runs/<name>`."""
    if run_dir is not None:
        return Path(run_dir)
    if current is not None:
        return current
    return Path("runs") / run_name(env_id, algo, seed)


def training_state(env: VecEnv, obs: torch.Tensor | None) -> dict[str, Any]:
    """RNG states, environment state (episodes in flight, statistics) and the current observation."""
    return {"rng": rng_state(), "env_state": env.state_dict(), "obs": obs}


def restore_training_state(env: VecEnv, payload: dict[str, Any], device: torch.device) -> torch.Tensor | None:
    """Restore what `training_state` saved; returns the observation to continue from (None: reset)."""
    set_rng_state(payload["rng"])
    env.load_state_dict(payload["env_state"])
    obs = payload.get("obs")
    return obs.to(device) if obs is not None else None


def interrupted_message(algo: str, env_id: str, step: int, checkpoint: Path, run_dir: Path) -> str:
    return (f"\nInterrupted at step {step:,}. Checkpoint saved to {checkpoint}; TensorBoard logs flushed.\n"
            f"Resume with: rl train {algo} {env_id} --resume {run_dir}")
