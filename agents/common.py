"""Plumbing every agent composes: building environments, checking spaces, run directories,
and the parts of a checkpoint that are not the agent's own networks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs
from envs.core import VecEnv
from envs.wrappers import ClipReward, ObservationNormalization
from rlcore.evaluation import evaluate
from rlcore.logger import Logger, run_name
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
    # The saved observation is only valid if the environments came back mid-episode too.
    if obs is None or not getattr(env.unwrapped, "resumed_mid_episode", False):
        return None
    return obs.to(device)


def interrupted_message(algo: str, env_id: str, step: int, checkpoint: Path, run_dir: Path) -> str:
    return (f"\nInterrupted at step {step:,}. Checkpoint saved to {checkpoint}; TensorBoard logs flushed.\n"
            f"Resume with: rl train {algo} {env_id} --resume {run_dir}")


class Evaluations:
    """Deterministic evaluation every `every` environment steps during training, an optional
    target return that stops the run, and the run's `summary.json`.

    Wall times exclude evaluation: `train_time()` is what the run spent training.
    """

    def __init__(self, agent: Any, logger: Logger, every: int = 0, episodes: int = 20,
                 stop_at_return: float | None = None, seed: int = 10_000):
        if every < 0 or episodes < 1:
            raise ValueError(f"eval_every = {every} must be >= 0 and eval_episodes = {episodes} >= 1.")
        if stop_at_return is not None and every == 0:
            raise ValueError("stop_at_return needs eval_every > 0: the target is checked at each evaluation.")
        self.agent, self.logger = agent, logger
        self.every, self.episodes, self.stop_at_return, self.seed = every, episodes, stop_at_return, seed
        self.next_at = agent.global_step + every if every else None
        self.started = time.perf_counter()
        self.eval_seconds = 0.0
        self.last_mean: float | None = None
        self.reached: dict[str, float] = {}

    def train_time(self) -> float:
        return time.perf_counter() - self.started - self.eval_seconds

    def due(self, global_step: int) -> bool:
        return self.next_at is not None and global_step >= self.next_at

    def run(self, global_step: int) -> bool:
        """Evaluate now; True when the target return is reached (the run should stop)."""
        t0 = time.perf_counter()
        train_time = self.train_time()
        mean, std = evaluate(self.agent, self.agent.env_id, episodes=self.episodes, seed=self.seed,
                             num_envs=min(self.episodes, 10))
        self.last_mean = mean
        self.logger.log(global_step, {"eval/mean_return": mean, "eval/std_return": std})
        if self.every:
            while self.next_at is not None and self.next_at <= global_step:
                self.next_at += self.every
        self.eval_seconds += time.perf_counter() - t0
        if self.stop_at_return is not None and mean >= self.stop_at_return and not self.reached:
            self.reached = {"steps_to_threshold": global_step, "wall_time_to_threshold": train_time}
            return True
        return False

    def write_summary(self, global_step: int, final_eval: bool = True) -> dict[str, Any]:
        """`summary.json`: steps, training wall time, final mean return (a fresh evaluation unless
        the run just evaluated), and the threshold figures when a target was reached."""
        wall = self.train_time()
        if final_eval and (self.last_mean is None or not self.reached):
            self.run(global_step)
        summary = {"steps": global_step, "wall_time": wall, "final_mean_return": self.last_mean,
                   "eval_episodes": self.episodes, "stop_at_return": self.stop_at_return, **self.reached}
        (self.logger.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
