"""Plumbing every agent composes: building environments, checking spaces, run directories,
and the parts of a checkpoint that are not the agent's own networks."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs
from agents.presets import preset_for
from envs import TEXT_ENV_ID
from envs.core import VecEnv
from envs.wrappers import ClipReward, EpisodeStatistics, ObservationNormalization, RewardNormalization
from rlcore.allocator import reuse_freed_memory
from rlcore.checkpoint import CHECKPOINT_NAME, MODEL_NAME, load_checkpoint, save_checkpoint
from rlcore.config import build_config, check
from rlcore.evaluation import evaluate
from rlcore.interrupt import GracefulInterrupt
from rlcore.kl import kl_estimate
from rlcore.lm import LMActorCritic
from rlcore.logger import Logger, ProgressBar, run_name
from rlcore.policies import ACTIVATIONS, ActorCritic, side_by_side_act
from rlcore.rollout import RolloutBuffer
from rlcore.seeding import rng_state, seed_everything, set_rng_state


def check_action_space(algo: str, space: gym.Space, allowed: tuple[type, ...]) -> None:
    """A clear error for an action space the agent cannot handle, naming the agents that can."""
    if not isinstance(space, allowed):
        from agents import AGENTS  # the registry imports every agent, which import this module

        fits = [name for name, cls in AGENTS.items() if isinstance(space, cls.action_spaces)]
        hint = f"Agents that fit: {', '.join(fits)}." if fits else "No agent here handles it yet."
        raise ValueError(
            f"{algo.upper()} needs a {' or '.join(a.__name__ for a in allowed)} action space, "
            f"but the environment has {space}. {hint}")


def text_env_kwargs(cfg: Any) -> dict[str, Any]:
    """`envs.make("Text-v0", ...)` options from an agent's language-model config fields."""
    if not getattr(cfg, "model", ""):
        raise ValueError(f"{TEXT_ENV_ID} needs a language model: give model (--model DIR), a directory a Hugging Face "
                         "causal LM and its tokenizer were saved to, e.g. by `rl pretrain-lm --out DIR`.")
    if not Path(cfg.model).is_dir():
        raise FileNotFoundError(f"model = {cfg.model!r}: no such directory. Give the directory a Hugging Face causal "
                                "LM was saved to (save_pretrained), e.g. by `rl pretrain-lm --out DIR`.")
    prompts = cfg.prompts or str(Path(cfg.model) / "prompts.txt")
    if not Path(prompts).exists():
        raise FileNotFoundError(f"No prompts: {prompts!r} does not exist. Give prompts (--prompts FILE): a .txt file "
                                "with one prompt per line or a .jsonl file with a \"prompt\" field.")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(cfg.model, local_files_only=True)
    context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return {"prompts": prompts, "tokenizer": cfg.model, "reward": cfg.reward, "max_new_tokens": cfg.max_new_tokens,
            "group_size": cfg.group_size, "missing_eos_penalty": cfg.missing_eos_penalty,
            "normalize": cfg.reward_normalization, "context_length": context}


def samples_table(samples: dict[str, list], rows: int = 8) -> str:
    """The first `rows` prompts, completions and rewards of a round, as a markdown table for TensorBoard."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| prompt | completion | reward |", "|---|---|---:|"]
    for prompt, completion, reward in list(zip(samples["prompts"], samples["completions"], samples["rewards"]))[:rows]:
        lines.append(f"| {cell(prompt)} | {cell(completion)} | {float(reward):.3f} |")
    return "\n".join(lines)


def is_text_env(env: VecEnv) -> bool:
    return getattr(env.unwrapped, "env_id", None) == TEXT_ENV_ID


def make_training_env(env_id: str, cfg: Any, members: int = 1) -> VecEnv:
    """The training environment: `cfg.num_envs` copies per member (seed trained at once)."""
    if env_id == TEXT_ENV_ID:
        if not hasattr(cfg, "kl_coef"):
            raise ValueError(f"{TEXT_ENV_ID} is trained by PPO (its loss handles whole text episodes): rl train ppo.")
        return envs.make(env_id, num_envs=cfg.num_envs, seed=cfg.seed, device=cfg.device, **text_env_kwargs(cfg))
    env = envs.make(env_id, num_envs=cfg.num_envs * members, seed=cfg.seed, device=cfg.device, normalize_obs=cfg.normalize_obs,
                    backend=cfg.backend)
    # Outside EpisodeStatistics (which make() puts innermost), so logged returns stay the raw score.
    if getattr(cfg, "normalize_reward", False):
        env = RewardNormalization(env, gamma=cfg.gamma)
    return ClipReward(env) if getattr(cfg, "clip_reward", False) else env


def make_eval_env(train_env: VecEnv, env_id: str, cfg: Any, num_envs: int = 1, seed: int | None = None) -> VecEnv:
    """Same wrappers as training, without reward clipping, and with observation statistics copied and frozen."""
    env = envs.make(env_id, num_envs=num_envs, seed=seed, device=cfg.device, normalize_obs=cfg.normalize_obs,
                    backend=cfg.backend)
    source, target = train_env.find(ObservationNormalization), env.find(ObservationNormalization)
    if source is not None and target is not None:
        # Only the statistics: the wrapper's full state_dict also carries the training copies' own state.
        target.obs_rms.load_state_dict(source.obs_rms.state_dict())
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


def check_eval_settings(every: int, episodes: int, stop_at_return: float | None) -> None:
    if every < 0 or episodes < 1:
        raise ValueError(f"eval_every = {every} must be >= 0 and eval_episodes = {episodes} >= 1.")
    if stop_at_return is not None and every == 0:
        raise ValueError("stop_at_return needs eval_every > 0: the target is checked at each evaluation.")


class Evaluations:
    """Deterministic evaluation every `every` environment steps during training, an optional
    target return that stops the run, and the run's `summary.json`.

    Wall times exclude evaluation: the caller (TrainingRun) keeps the training clock and passes it in.
    """

    def __init__(self, agent: Any, logger: Logger, every: int = 0, episodes: int = 20,
                 stop_at_return: float | None = None, seed: int = 10_000, member: int | None = None):
        self.agent, self.logger, self.member = agent, logger, member
        self.every, self.episodes, self.stop_at_return, self.seed = every, episodes, stop_at_return, seed
        self.next_at = agent.global_step + every if every else None
        self.eval_seconds = 0.0
        self.last_mean: float | None = None
        self.last_step: int | None = None
        self.reached: dict[str, float] = {}

    def due(self, global_step: int) -> bool:
        return self.next_at is not None and global_step >= self.next_at

    def run(self, global_step: int, train_time: float) -> bool:
        """Evaluate now; True when the target return is reached (the run should stop).
        `train_time` is the training wall time so far, recorded if the target is reached."""
        t0 = time.perf_counter()
        policy = self.agent if self.member is None else self.agent.member(self.member)
        mean, std = evaluate(policy, self.agent.env_id, episodes=self.episodes, seed=self.seed,
                             num_envs=min(self.episodes, 10))
        self.last_mean, self.last_step = mean, global_step
        self.logger.log(global_step, {"eval/mean_return": mean, "eval/std_return": std})
        if self.every:
            while self.next_at is not None and self.next_at <= global_step:
                self.next_at += self.every
        self.eval_seconds += time.perf_counter() - t0
        if self.stop_at_return is not None and mean >= self.stop_at_return and not self.reached:
            self.reached = {"steps_to_threshold": global_step, "wall_time_to_threshold": train_time}
            return True
        return False

    def write_summary(self, global_step: int, wall: float, final_eval: bool = True,
                      last_round: dict[str, float] | None = None) -> dict[str, Any]:
        """`summary.json`: steps, training wall time, final mean return (a fresh evaluation unless
        the run just evaluated), the threshold figures when a target was reached, and for a text
        environment the last round's reward, KL and response length (`last_round`)."""
        if final_eval and self.last_step != global_step:
            self.run(global_step, wall)
        summary = {"steps": global_step, "wall_time": wall, "final_mean_return": self.last_mean,
                   "eval_episodes": self.episodes, "stop_at_return": self.stop_at_return, **self.reached}
        if last_round:
            summary["last_round"] = last_round
        (self.logger.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


class Timing:
    """Where a training loop's time goes: `with timing.phase("env"): ...`, reported as fractions
    (`perf/<phase>_fraction`) at each log.

    Host wall-clock: exact on the CPU; on an accelerator a phase can absorb the queued work of
    the one before it, so read those figures as indicative."""

    def __init__(self, *phases: str):
        self.seconds = dict.fromkeys(phases, 0.0)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        total = sum(self.seconds.values()) or 1.0
        out = {f"perf/{name}_fraction": s / total for name, s in self.seconds.items()}
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        return out


class NanGuard:
    """Remembers, on the device, the first step whose loss, observation or reward was not finite
    (and for inputs, which environment copy), so the hot loop never syncs; `check`, called at log
    and checkpoint time, turns it into an error naming the step."""

    def __init__(self, device: torch.device):
        # [loss step, input step, input env], -1 where nothing went wrong yet.
        self.first = torch.full((3,), -1, dtype=torch.long, device=device)

    def record(self, loss: torch.Tensor, step: int) -> None:
        finite = torch.isfinite(loss.detach())
        if finite.device.type == "cpu" and bool(finite.all()):
            return  # on the CPU reading the flag is free; on an accelerator stay branch-free (no sync)
        bad = ~finite & (self.first[0] < 0)
        self.first[0] = torch.where(bad, step, self.first[0])

    def record_env(self, obs: torch.Tensor, reward: torch.Tensor, step: int) -> None:
        # A NaN or inf anywhere in a copy's observation or reward makes this per-copy sum non-finite.
        total = reward + obs.flatten(1).sum(1) if obs.is_floating_point() else reward
        finite = torch.isfinite(total)
        if finite.device.type == "cpu" and bool(finite.all()):
            return  # as in `record`
        bad_env = ~finite
        self._keep_first_input(bad_env.any(), step, bad_env.int().argmax())

    def record_rollout(self, obs: torch.Tensor, rewards: torch.Tensor, start_step: int, step_size: int) -> None:
        """`record_env` for a whole rollout at once (a few ops instead of a few per step): `obs[t]`
        ``[T, N, ...]`` came back at environment step ``start_step + t * step_size``, `rewards[t]` at
        ``start_step + (t + 1) * step_size``. The earliest bad step is kept, then the lowest copy."""
        T, N = rewards.shape
        bad = torch.zeros(T + 1, N, dtype=torch.bool, device=rewards.device)
        if obs.is_floating_point():
            bad[:T] = ~torch.isfinite(obs.reshape(T, N, -1).sum(2))
        bad[1:] |= ~torch.isfinite(rewards)
        bad = bad.flatten()
        if bad.device.type == "cpu" and not bool(bad.any()):
            return  # as in `record`
        first = bad.int().argmax()  # row-major: the earliest step, then the lowest copy
        self._keep_first_input(bad.any(), start_step + first.div(N, rounding_mode="floor") * step_size, first % N)

    def _keep_first_input(self, any_bad: torch.Tensor, step: int | torch.Tensor, env: torch.Tensor) -> None:
        new = any_bad & (self.first[1] < 0)  # only the first bad input is kept
        self.first[1] = torch.where(new, step, self.first[1])
        self.first[2] = torch.where(new, env, self.first[2])

    def check(self, algo: str, checkpoint: Path) -> None:
        loss_step, input_step, env = self.first.tolist()
        if input_step >= 0:
            raise FloatingPointError(
                f"The environment returned a NaN/inf observation or reward at environment step {input_step} "
                f"(copy {env}). Training stopped; the last good checkpoint is {checkpoint} (not overwritten). "
                "Check the environment, or wrap it to sanitise its output.")
        if loss_step >= 0:
            raise FloatingPointError(
                f"{algo.upper()} loss became NaN/inf at environment step {loss_step}. Training stopped; the last "
                f"good checkpoint is {checkpoint} (not overwritten). Lower learning_rate, check rewards and "
                "observations for NaN, or set normalize_obs=True.")

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first.copy_(state["first"])


class TrainingRun:
    """What every agent's `learn` loop shares, so each agent file keeps only its own algorithm:
    the run directory, TensorBoard logger, progress bar, periodic evaluation, where the time
    goes, checkpoints, Ctrl-C and `summary.json`.

    Use as `with TrainingRun(agent, ...) as run:` around the loop, and call
    `run.step_done(scalars)` after each iteration; it returns True when the run should stop.
    The agent provides `algo`, `env_id`, `env`, `config` (`seed`, `log_interval`,
    `checkpoint_interval`), `global_step`, `nan_guard`, `save(path, include_buffer=...)`.

    An agent training several seeds at once (`agent.seeds`, PPO's stacked networks) gets one of
    everything per seed: run directory (`<run_dir>/seed<s>`), logger, evaluations, checkpoint
    and summary, written from `agent.member(m)`, a plain single-seed agent; scalars that are
    `[members]` tensors are split among them. The run stops when every seed reached the target.
    """

    def __init__(self, agent: Any, total_steps: int, run_dir: str | Path | None, progress: bool,
                 eval_every: int, eval_episodes: int, stop_at_return: float | None, phases: tuple[str, ...]):
        # Checked before the run directory is created, so bad settings leave nothing behind.
        if total_steps < 1:
            raise ValueError(f"total_steps = {total_steps} is invalid: must be >= 1.")
        check_eval_settings(eval_every, eval_episodes, stop_at_return)
        cfg = agent.config
        self.agent = agent
        agent.total_steps = total_steps
        seeds = getattr(agent, "seeds", None)
        self.members = len(seeds) if seeds else 1
        if self.members == 1:
            agent.run_dir = resolve_run_dir(run_dir, getattr(agent, "run_dir", None), agent.env_id, agent.algo, cfg.seed)
            self.run_dirs = [agent.run_dir]
        else:
            self.run_dirs = [Path(run_dir) / f"seed{s}" if run_dir is not None
                             else Path("runs") / run_name(agent.env_id, agent.algo, s) for s in seeds]
            agent.run_dirs = self.run_dirs
            agent.run_dir = Path(run_dir) if run_dir is not None else self.run_dirs[0].parent
        hparams = {"algo": agent.algo, "env_id": agent.env_id, "total_steps": total_steps, **dataclasses.asdict(cfg)}
        self.loggers = [Logger(d, {**hparams, "seed": s}) for d, s in zip(self.run_dirs, seeds or [cfg.seed])]
        self.logger = self.loggers[0]
        self.evals = [Evaluations(agent, lg, eval_every, eval_episodes, stop_at_return,
                                  member=None if self.members == 1 else m) for m, lg in enumerate(self.loggers)]
        self.started = time.perf_counter()
        self.timing = Timing(*phases)
        self.stats_env = agent.env.find(EpisodeStatistics)
        self.bar = ProgressBar(total_steps, initial=agent.global_step, enabled=progress)
        self.step_start = agent.global_step
        self.next_log = agent.global_step + cfg.log_interval
        self.next_checkpoint = agent.global_step + cfg.checkpoint_interval if cfg.checkpoint_interval else None
        self.interrupt = GracefulInterrupt()
        if agent.device.type == "cpu":  # every step's large tensors reuse freed memory, not fresh pages
            reuse_freed_memory()
        if agent.obs is None:
            # A new run starts from a seeded reset. A resumed run whose environments could not come back
            # mid-episode resets without reseeding: their restored state (a text environment's prompt order) goes on.
            agent.obs, _ = agent.env.reset(seed=None if agent.global_step else cfg.seed)

    @property
    def run_dir(self) -> Path:
        return self.run_dirs[0]

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def train_time(self) -> float:
        """Wall time spent training: evaluations (of every seed) excluded."""
        return time.perf_counter() - self.started - sum(e.eval_seconds for e in self.evals)

    def _save(self, name: str, include_buffer: bool) -> Path:
        if self.members == 1:
            return self.agent.save(self.run_dir / name, include_buffer=include_buffer)
        for m, d in enumerate(self.run_dirs):
            self.agent.member(m).save(d / name)
        return self.run_dirs[0].parent / f"seed*/{name}"

    def save_checkpoint(self) -> Path:
        """Everything a resume needs; refused once a loss went NaN, so the last good one survives."""
        self.agent.nan_guard.check(self.agent.algo, self.checkpoint_path)
        return self._save(CHECKPOINT_NAME, getattr(self.agent.config, "save_replay_buffer", False))

    def __enter__(self) -> "TrainingRun":
        self.interrupt.__enter__()
        return self

    def step_done(self, scalars: dict[str, Any]) -> bool:
        """Log, evaluate and checkpoint when due; True when the target return was reached."""
        step = self.agent.global_step
        if step >= self.next_log or step >= self.agent.total_steps:
            self.log(scalars)
            while self.next_log <= step:
                self.next_log += self.agent.config.log_interval
        if self.evals[0].due(step):
            train_time = self.train_time()
            reached = [e.run(step, train_time) or bool(e.reached) for e in self.evals]
            if all(reached):
                return True
        if self.next_checkpoint is not None and step >= self.next_checkpoint:
            self.save_checkpoint()
            while self.next_checkpoint <= step:
                self.next_checkpoint += self.agent.config.checkpoint_interval
        if self.interrupt.requested:
            raise KeyboardInterrupt
        return False

    def log(self, scalars: dict[str, Any]) -> None:
        self.agent.nan_guard.check(self.agent.algo, self.checkpoint_path)
        step = self.agent.global_step
        sps = (step - self.step_start) / max(self.train_time(), 1e-9)
        scalars = {**scalars, **self.timing.pop(), "charts/SPS": sps}
        if self.stats_env is not None:
            ret_sum, len_sum, count = self.stats_env.pop_finished(groups=self.members if self.members > 1 else None)
            counts = count.reshape(-1).tolist()  # one sync per log, to leave windows without an episode blank
        for m, logger in enumerate(self.loggers):
            member = {k: v[m] if isinstance(v, torch.Tensor) and v.dim() > 0 else v for k, v in scalars.items()}
            if self.stats_env is not None and counts[m] > 0:
                member["charts/episodic_return"] = ret_sum.reshape(-1)[m] / counts[m]
                member["charts/episodic_length"] = len_sum.reshape(-1)[m] / counts[m]
            logger.log(step, member)
        samples = getattr(self.agent, "samples", None)
        if samples:  # a text environment's last round: prompts, completions and rewards as a markdown table
            self.logger.text("text/samples", samples_table(samples), step)
            self.agent.samples = None
        if self.bar.enabled:  # the recent mean return costs a sync
            self.bar.update(step, sps, self.stats_env.recent_mean_return() if self.stats_env else None)

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> bool:
        self.interrupt.__exit__()
        agent = self.agent
        try:
            if exc_type is None:
                self.save_checkpoint()
                self._save(MODEL_NAME, include_buffer=False)
                wall = self.train_time()
                last_round = {k.split("/")[-1]: float(v) for k, v in getattr(agent, "rollout_stats", {}).items()}
                summaries = [e.write_summary(agent.global_step, wall, final_eval=e.every > 0, last_round=last_round)
                             for e in self.evals]
                agent.summary = summaries[0] if self.members == 1 else summaries
            elif issubclass(exc_type, KeyboardInterrupt):
                path = self.save_checkpoint()
                print(interrupted_message(agent.algo, agent.env_id, agent.global_step, path, self.run_dir), flush=True)
        finally:
            for logger in self.loggers:
                logger.close()
            self.bar.close()
        return False


@dataclass
class PolicyConfig:
    """Fields every policy-gradient agent's config shares (environment, network, run settings)."""

    num_envs: int = 8
    """Environment copies stepped together."""
    n_steps: int = 128
    """Steps per copy in each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight; the value loss is 0.5 * MSE (CleanRL's), so SB3's (plain MSE) vf_coef c is 2c here."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    normalize_obs: bool = False
    """Normalise observations by running mean and std (saved in checkpoints)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (saved in checkpoints)."""
    clip_reward: bool | None = None
    """Train on the sign of the reward; None means on for Atari (ALE/...) ids."""
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
    seed: int = 0
    """Seed of the network, sampling and environments."""
    device: str = "cpu"
    """Torch device of the network, rollout buffer and environment tensors."""
    backend: str = "auto"
    """Environment implementation: torch (native batched tensors), gymnasium, or auto (torch where one exists)."""
    compile: bool = False
    """torch.compile the policy's acting step; on CUDA with CUDA graphs (mode="reduce-overhead")."""
    log_interval: int = 2_048
    """Environment steps between TensorBoard writes (checked after each update)."""
    checkpoint_interval: int = 100_000
    """Environment steps between training checkpoints (0: only at the end and on Ctrl-C)."""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        for name in ("num_envs", "n_steps", "log_interval"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "checkpoint_interval", self.checkpoint_interval >= 0, ">= 0")
        check(self, "gamma", 0 < self.gamma <= 1, "in (0, 1]")
        check(self, "max_grad_norm", self.max_grad_norm > 0, "> 0")
        check(self, "activation", self.activation in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}")
        check(self, "backend", self.backend in envs.BACKENDS, f"one of {', '.join(envs.BACKENDS)}")
        check(self, "hidden_sizes", all(h >= 1 for h in self.hidden_sizes), "positive widths")


def make_actor_critic(env: VecEnv, cfg: Any) -> ActorCritic | LMActorCritic:
    """The policy-gradient agents' network from their config fields (hidden_sizes, activation,
    squash_actions, ortho_init, log_std_init), on the config's device; a language model
    (`cfg.model`) for a text environment."""
    if is_text_env(env):
        text = env.unwrapped
        return LMActorCritic.from_pretrained(
            cfg.model, text.prompt_len, text.max_new_tokens, device=cfg.device, temperature=cfg.temperature,
            top_k=cfg.top_k, top_p=cfg.top_p, critic="none" if cfg.advantage == "group" else cfg.critic,
            lora_r=cfg.lora_r)
    policy = ActorCritic(env.single_observation_space, env.single_action_space, cfg.hidden_sizes, cfg.activation,
                         cfg.squash_actions, cfg.ortho_init).to(cfg.device)
    if isinstance(env.single_action_space, gym.spaces.Box):
        with torch.no_grad():
            policy.actor_head.log_std.fill_(cfg.log_std_init)
    return policy


def make_rollout_buffer(env: VecEnv, n_steps: int, device: torch.device) -> RolloutBuffer:
    obs_space, act_space = env.single_observation_space, env.single_action_space
    return RolloutBuffer(
        n_steps, env.num_envs, tuple(obs_space.shape),
        torch.uint8 if obs_space.dtype == np.uint8 else torch.long if obs_space.dtype == np.int64 else torch.float32,
        tuple(act_space.shape), torch.float32 if isinstance(act_space, gym.spaces.Box) else torch.long, device)


def acting_step(agent: Any) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`agent.policy.act` for one rollout: with the actor's and critic's MLPs side by side where they
    fit (`side_by_side_act`, a copy of the weights made here), or compiled once when the config asks.
    On CUDA, mode "reduce-overhead" replays the compiled step as one CUDA graph; its outputs live in
    the graph's memory until the next call, which is safe here because `collect` copies them into
    the buffer at once."""
    if not agent.config.compile:
        return side_by_side_act(agent.policy) or agent.policy.act
    if getattr(agent, "_compiled_act", None) is None:
        mode = "reduce-overhead" if agent.device.type == "cuda" else "default"
        agent._compiled_act = torch.compile(agent.policy.act, mode=mode, dynamic=False)
    return agent._compiled_act


@torch.inference_mode()
def collect(agent: Any, gamma: float, gae_lambda: float) -> None:
    """Fill `agent.buffer` with a rollout of `agent.policy` on `agent.env`, then its GAE advantages.

    Advances `agent.obs` and `agent.global_step`; the NaN guard sees every observation and reward
    (once the rollout is in the buffer; the last observation with the next rollout).
    Runs under `torch.inference_mode`, whose ops skip autograd's bookkeeping (a sixth off a CartPole
    rollout on a CPU against `no_grad`). Tensors made here are inference tensors: whatever outlives
    the rollout and is changed in place or used by the update outside it must be written into
    (the buffer's preallocated storage) or rebound there, never allocated here and mutated later.
    """
    buffer, policy, env = agent.buffer, agent.policy, agent.env
    act = acting_step(agent)
    buffer.reset()
    n = env.num_envs // getattr(agent, "members", 1)  # steps are counted per seed when several train at once
    text = getattr(policy, "sequence_level", False)
    no_final_values = torch.zeros(env.num_envs, device=buffer.device)
    start_step = agent.global_step
    if text and env.unwrapped.round_step != 0:
        raise RuntimeError("A text rollout must start at a round's first token; the environment is mid-round.")
    for _ in range(buffer.num_steps):
        action, logprob, value = act(agent.obs)
        next_obs, reward, terminated, truncated, info = env.step(policy.to_env(action))
        # V(true final observation), read only where a time limit cut an episode (the bootstrap). On an
        # accelerator one critic pass over every copy avoids asking which ones ended (a sync); on the
        # CPU asking is free and most steps truncate nothing, so the pass is skipped then. A text
        # episode is truncated only when its token budget is spent: nothing can follow, V = 0.
        if not text and (env.device.type != "cpu" or bool(truncated.any())):
            final_value = policy.value(info["final_obs"])
        else:
            final_value = no_final_values
        buffer.add(obs=agent.obs, actions=action, logprobs=logprob, values=value, rewards=reward,
                   terminated=terminated, truncated=truncated, final_values=final_value, valid=info.get("active"))
        agent.obs = next_obs
        agent.global_step += n
        if text and "texts" in info:
            agent.samples = info["texts"]
    agent.nan_guard.record_rollout(buffer.obs, buffer.rewards, start_step, n)
    if text:
        finish_text_rollout(agent, gamma, gae_lambda)
    else:
        buffer.compute_returns_and_advantages(policy.value(agent.obs), gamma, gae_lambda)


def finish_text_rollout(agent: Any, gamma: float, gae_lambda: float) -> None:
    """A round of generation is in the buffer: apply the KL penalty against the reference model,
    then GAE (every episode ended within the round, so nothing bootstraps) or the group baseline.
    With a zero, fixed KL coefficient the reference pass is skipped (and no KL is logged)."""
    buffer, policy, cfg, controller = agent.buffer, agent.policy, agent.config, agent.kl_controller
    valid = buffer.valid
    stats: dict[str, Any] = {"charts/reward_mean": torch.where(valid, buffer.rewards, 0.0).sum(0).mean(),
                             "charts/response_length": valid.sum(0).float().mean()}
    if controller.coef > 0 or cfg.kl_target is not None:
        obs, actions = buffer.obs.transpose(0, 1), buffer.actions.transpose(0, 1)  # [N, T, ...]: whole episodes
        # In minibatch-sized chunks: the logits of a whole round at once can outgrow memory the update never needs.
        chunk = max(cfg.batch_size // cfg.n_steps, 1)
        ref = torch.cat([policy.reference_logprobs(o, a) for o, a in zip(obs.split(chunk), actions.split(chunk))])
        ref = ref.transpose(0, 1)  # [T, N]
        kl = torch.where(valid, kl_estimate(buffer.logprobs, ref, cfg.kl_estimator), 0.0)
        episode_kl = kl.sum(0).mean()  # per episode, summed over its tokens (Ziegler et al.'s unit)
        stats.update({"charts/kl": episode_kl, "charts/kl_coef": controller.coef})
        if cfg.kl_penalty == "reward":
            buffer.rewards.sub_(controller.coef * kl)
        else:
            buffer.ref_logprobs.copy_(ref)
            buffer.has_ref_logprobs = True
        controller.update(float(episode_kl), buffer.num_envs)  # one sync per round
    if cfg.advantage == "group":
        buffer.compute_group_advantages(cfg.group_size)
    else:
        buffer.compute_returns_and_advantages(torch.zeros(buffer.num_envs, device=buffer.device), gamma, gae_lambda)
    agent.rollout_stats = stats


class BackgroundRollout:
    """PPO's `async_rollout`: the next rollout is collected while the update learns from the last
    one, so generation and learning overlap (one update off-policy, as in Noukhovitch et al. 2024,
    "Asynchronous RLHF"): in a background thread (`start`), or here (`collect`) while a
    `LearnerProcess` runs the update (on a CPU). The collector acts with its own copy of the
    policy holding the weights from before the update in progress; the buffer keeps that policy's
    log-probabilities, so PPO's ratio corrects for the lag.

    It stands in for the agent when calling `collect`: environment, config and NaN guard are the
    agent's; policy, buffer, step counter, round statistics and samples are its own until `take`
    hands the round over. The KL controller's update waits until then too, so every round and
    every update sees the coefficient a sequential run would. The learner shuffles minibatches
    with `shuffle` and the collector samples with the global RNG, so a seeded run is reproducible
    whatever the threads' timing. A round collected but not yet trained on is in `state_dict`:
    a checkpoint taken between updates resumes exactly.
    """

    def __init__(self, agent: Any):
        self.agent = agent
        self.config, self.env, self.device = agent.config, agent.env, agent.device
        self.nan_guard, self.members = agent.nan_guard, getattr(agent, "members", 1)
        controller = getattr(agent, "kl_controller", None)
        self.kl_controller = _DeferredKL(controller) if controller is not None else None
        frozen = getattr(agent.policy, "_reference", None)  # a language model's reference: read-only, shared
        self.policy = copy.deepcopy(agent.policy, {id(frozen): frozen} if frozen is not None else {})
        self.buffer = make_rollout_buffer(agent.env, agent.config.n_steps, agent.device)
        self.shuffle = torch.Generator(device=agent.device).manual_seed(agent.config.seed)
        self.global_step = 0  # the collected round's steps count here until `take`
        self.rollout_stats: dict[str, Any] = {}
        self.samples: dict[str, list] | None = None
        self.pending = False  # a round is collected and not yet taken
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # The tensors `sync` copies, listed once (listing them costs more than copying them): the
        # policies' parameters and buffers, which loading and optimiser steps change in place.
        self._weights = ([*self.policy.parameters(), *self.policy.buffers()],
                         [*agent.policy.parameters(), *agent.policy.buffers()])

    @property
    def obs(self) -> torch.Tensor:
        return self.agent.obs

    @obs.setter
    def obs(self, value: torch.Tensor) -> None:
        self.agent.obs = value

    def collect(self) -> None:
        """Collect the next round here and now (`start` collects it in a thread)."""
        self.global_step = self.agent.global_step
        collect(self, self.config.gamma, self.config.gae_lambda)
        self.pending = True

    def _run(self) -> None:
        try:
            self.collect()
        except BaseException as e:  # re-raised in the learner's thread by `wait`
            self._error = e

    def sync(self) -> None:
        """Give the collector's policy the learner's current weights."""
        with torch.no_grad():
            torch._foreach_copy_(*self._weights)

    def take(self) -> None:
        """Make the collected round (collected now if none is) the agent's rollout: its buffer,
        steps, round statistics and samples, and the KL controller's update."""
        if not self.pending:
            self.collect()
        agent = self.agent
        agent.buffer, self.buffer = self.buffer, agent.buffer
        agent.global_step = self.global_step
        agent.rollout_stats = self.rollout_stats
        if self.samples is not None:
            agent.samples, self.samples = self.samples, None
        if self.kl_controller is not None:
            self.kl_controller.apply()
        self.pending = False

    def start(self) -> None:
        """Collect the next round in the background, with the weights the collector holds now."""
        self._thread = threading.Thread(target=self._run, name="rollout", daemon=True)
        self._thread.start()

    def wait(self, raise_error: bool = True) -> None:
        """Wait for the background round, re-raise its error, then sync the weights for the next."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error
        self.sync()

    @contextlib.contextmanager
    def split_threads(self) -> Iterator[Callable[[bool], None]]:
        """Yields `split(beside)`: on a CPU, while a round is collected beside the update, the
        collector and the learner each get half the torch threads (at least one); the first round
        and the last update, which run alone, get all of them (a `LearnerProcess` takes the count
        this process has when the update starts). The count changes only at those two
        ends: the learner switching back and forth every round left its idle OpenMP workers
        spinning on the collector's cores, and the run was slower for it."""
        threads = torch.get_num_threads()

        def split(beside: bool) -> None:
            n = max(threads // 2, 1) if beside and self.device.type == "cpu" else threads
            if torch.get_num_threads() != n:
                torch.set_num_threads(n)

        try:
            yield split
        finally:
            torch.set_num_threads(threads)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"pending": self.pending, "shuffle": self.shuffle.get_state()}
        if self.pending:
            state.update(buffer=self.buffer.state_dict(), global_step=self.global_step,
                         rollout_stats=self.rollout_stats, samples=self.samples,
                         kl_update=self.kl_controller.pending if self.kl_controller is not None else None)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shuffle.set_state(state["shuffle"])
        self.pending = bool(state["pending"])
        if self.pending:
            self.buffer.load_state_dict(state["buffer"])
            self.global_step, self.rollout_stats, self.samples = state["global_step"], state["rollout_stats"], state["samples"]
            if self.kl_controller is not None:
                self.kl_controller.pending = state["kl_update"]


def learner_process_available(agent: Any) -> bool:
    """Whether `async_rollout` runs its updates in a `LearnerProcess`: on a CPU where processes fork
    (Linux) and /dev/shm can hold the weights and rollouts. On an accelerator the update's kernels
    run beside the collector thread's anyway, and a process holding CUDA cannot fork. A container's
    /dev/shm is often small (Docker: 64 MB): then the update stays in this process, with a warning."""
    if agent.device.type != "cpu" or not sys.platform.startswith("linux"):
        return False
    needed = sum(t.untyped_storage().nbytes() for t in LearnerProcess.shared_tensors(agent) if not t.is_shared())
    try:
        stat = os.statvfs("/dev/shm")
        free = stat.f_bavail * stat.f_frsize
    except OSError:
        free = 0
    if needed > free // 2:  # leave room for everything else there
        warnings.warn(f"async_rollout: /dev/shm has {free / 2**20:.0f} MB free and the learner process needs "
                      f"{needed / 2**20:.0f} MB of shared memory, so updates run beside the collector in this process "
                      "(slower on a CPU: they share Python's GIL). Give it more, e.g. docker run --shm-size=2g.",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


class LearnerProcess:
    """`async_rollout` on a CPU: each update runs in a child process, forked when `learn` starts,
    while this process collects the next round (`BackgroundRollout.collect`).

    Why a process: in one process the collector thread and the update contend for Python's GIL,
    each making thousands of small torch calls a round. Measured on a 2-core CPU with the tiny
    GPT-2 of `rl pretrain-lm`, one torch thread each: the update took 22% longer beside the
    collector thread than alone, and no longer beside a process doing the same collection
    (beside a thread doing nothing but large matmuls, also no longer: the cost is the GIL, not the cores).

    Nothing large crosses the pipe. Before the fork the policy's parameters and buffers, both
    rollout buffers and the NaN guard's record move to shared memory, so the child's optimiser
    steps change this process's weights in place. Per update this process sends the buffer's
    index and flags, the step count and the KL coefficient; the child returns the update's
    statistics, the update count and the minibatch generator's state. The optimiser's state
    stays in the child until `pull` copies it back (before a checkpoint, and when `learn` ends).

    The child runs as many torch threads as this process has when an update starts (half of them
    beside a round being collected, all for the last update: `BackgroundRollout.split_threads`).
    It is forked from a new thread: GNU OpenMP is not fork-safe, and a child forked from a thread
    that has run parallel regions hangs in its first one of several threads (its pool's workers
    do not exist in the child); a thread that never ran one has no pool to inherit. The child
    ignores Ctrl-C (this process handles it: the update in flight finishes, then the checkpoint is
    saved) and leaves by `os._exit`, never running this process's exit handlers (the TensorBoard
    writers').
    """

    @staticmethod
    def shared_tensors(agent: Any) -> list[torch.Tensor]:
        """What both processes read and write: the policy's parameters and buffers, both rollout
        buffers, the NaN guard's record."""
        return [*agent.policy.parameters(), *agent.policy.buffers(), *agent.buffer.tensors(),
                *agent.rollouts.buffer.tensors(), agent.nan_guard.first]

    def __init__(self, agent: Any):
        self.agent = agent
        self.buffers = [agent.buffer, agent.rollouts.buffer]
        for tensor in self.shared_tensors(agent):
            tensor.share_memory_()
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        # Hugging Face tokenizers warn at every fork once they have used threads, unless this is set.
        quiet = "TOKENIZERS_PARALLELISM" not in os.environ
        if quiet:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        try:
            self._process = context.Process(target=self._serve, args=(child,), name="learner", daemon=True)
            errors: list[BaseException] = []

            def fork() -> None:
                try:
                    self._process.start()
                except BaseException as e:  # raised here, in the caller's thread
                    errors.append(e)

            forking = threading.Thread(target=fork, name="fork learner")
            forking.start()
            forking.join()
            if errors:
                raise errors[0]
        finally:
            if quiet:
                del os.environ["TOKENIZERS_PARALLELISM"]
            child.close()
        self.busy = False

    # ----- this process ----------------------------------------------------------------------
    def start(self) -> None:
        """Update on `agent.buffer` in the child; `wait` returns the statistics."""
        agent = self.agent
        coef = agent.kl_controller.coef if getattr(agent, "kl_controller", None) is not None else None
        index = next(i for i, b in enumerate(self.buffers) if b is agent.buffer)
        self._send(("update", index, agent.buffer.flags(), agent.global_step, coef, torch.get_num_threads()))
        self.busy = True

    def wait(self) -> dict[str, Any]:
        self.busy = False
        stats, self.agent.num_updates, shuffle = self._receive()
        self.agent.rollouts.shuffle.set_state(torch.frombuffer(bytearray(shuffle), dtype=torch.uint8))
        stats = {k: torch.tensor(v) if isinstance(v, list) else v for k, v in stats.items()}
        return {**stats, **self.agent.rollout_stats}

    def pull(self) -> None:
        """Copy the child's optimiser state here (a checkpoint, or the end of `learn`)."""
        if self.busy:
            self.wait()
        self._send(("state",))
        self.agent.optimizer.load_state_dict(self._receive())

    def close(self) -> None:
        """Let the update in flight finish, copy the optimiser state here, stop the child (killed if
        any of that fails: it died, or its update raised)."""
        try:
            self.pull()
            self._send(("stop",))
            self._process.join(10)
        finally:
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._conn.close()

    def _send(self, message: tuple) -> None:
        self._conn.send_bytes(pickle.dumps(message))

    def _receive(self) -> Any:
        try:
            kind, value = pickle.loads(self._conn.recv_bytes())
        except EOFError:
            self._process.join(1)
            raise RuntimeError(f"The learner process of async_rollout ended unexpectedly (exit code "
                               f"{self._process.exitcode}); the last checkpoint is the one to resume from.") from None
        if kind == "error":
            raise value
        return value

    # ----- the child ---------------------------------------------------------------------------
    def _serve(self, conn: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        agent = self.agent
        agent.rollout_stats = {}  # this process's are added to the statistics by `wait`
        try:
            while True:
                message = pickle.loads(conn.recv_bytes())
                if message[0] == "stop":
                    break
                try:
                    if message[0] == "state":
                        reply = agent.optimizer.state_dict()
                    else:
                        _, index, flags, agent.global_step, coef, threads = message
                        if torch.get_num_threads() != threads:
                            torch.set_num_threads(threads)
                        agent.buffer = self.buffers[index]
                        agent.buffer.set_flags(flags)
                        if coef is not None:
                            agent.kl_controller.coef = coef
                        # Numbers and bytes, not tensors: unpickling a tensor costs a torch.load (0.2 ms each).
                        stats = {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in agent._update().items()}
                        reply = (stats, agent.num_updates, agent.rollouts.shuffle.get_state().numpy().tobytes())
                    conn.send_bytes(pickle.dumps(("done", reply)))
                except Exception as e:
                    try:
                        conn.send_bytes(pickle.dumps(("error", e)))
                    except Exception:  # an error that does not pickle: its text
                        conn.send_bytes(pickle.dumps(("error", RuntimeError(traceback.format_exc()))))
        finally:
            os._exit(0)


class _DeferredKL:
    """The KL controller as a background round sees it: the coefficient is read through, the
    update is held until the round is taken (`apply`)."""

    def __init__(self, controller: Any):
        self.controller = controller
        self.pending: tuple[float, int] | None = None

    @property
    def coef(self) -> float:
        return self.controller.coef

    def update(self, current_kl: float, n_steps: int) -> None:
        self.pending = (current_kl, n_steps)

    def apply(self) -> None:
        if self.pending is not None:
            self.controller.update(*self.pending)
            self.pending = None


def evaluate_text(agent: Any, episodes: int = 64, seed: int | None = None) -> tuple[float, float, dict[str, list]]:
    """Mean and standard deviation of the reward-function score of `episodes` completions the
    policy samples (its temperature, top-k and top-p) for fresh prompts, with the samples. A new
    environment is built from the config, so the training environment's prompt order is untouched."""
    if episodes < 1:
        raise ValueError(f"episodes = {episodes} is invalid: must be >= 1.")
    env = make_training_env(agent.env_id, agent.config)
    policy = agent.policy
    policy.reset_cache()
    samples: dict[str, list] = {"prompts": [], "completions": [], "rewards": []}
    obs, _ = env.reset(seed=seed)
    with torch.no_grad():
        while len(samples["rewards"]) < episodes:
            obs, _, _, _, info = env.step(policy.act(obs)[0])
            if "texts" in info:  # the round is over
                for key in samples:
                    samples[key] += info["texts"][key]
    policy.reset_cache()
    env.close()
    samples = {key: values[:episodes] for key, values in samples.items()}
    scores = torch.tensor(samples["rewards"], dtype=torch.float64)
    return float(scores.mean()), float(scores.std(unbiased=False)), samples


def policy_predict(agent: Any, obs: torch.Tensor | np.ndarray, deterministic: bool) -> torch.Tensor | np.ndarray:
    """`predict` of the policy-gradient agents: the action the environment receives, the mode of
    the distribution when deterministic, else a sample. numpy in, numpy out."""
    obs_t, unbatched, was_numpy = obs_to_tensor(obs, agent.env.single_observation_space, agent.device)
    with torch.no_grad():
        action = agent.policy.mode(obs_t) if deterministic else agent.policy.distribution(obs_t).sample()
        action = agent.policy.to_env(action)
    action = action[0] if unbatched else action
    return action.cpu().numpy() if was_numpy else action


class Agent:
    """Saving, loading and evaluation environments, shared by every agent; the algorithm itself
    (acting, losses, the learn loop) stays in each agent's own file.

    A subclass sets `algo`, `config_class` and `checkpoint_state` (the attributes with
    `state_dict`/`load_state_dict`: networks, optimisers, the NaN guard) and keeps the counters
    `global_step`, `num_updates`, `total_steps`, plus `env`, `env_id`, `config`, `obs`, `device`.
    """

    algo: str
    config_class: type
    action_spaces: tuple[type, ...]
    checkpoint_state: tuple[str, ...] = ()
    counters: tuple[str, ...] = ("global_step", "num_updates", "total_steps")

    def __init__(self, env: str | VecEnv, hyperparameters: dict[str, Any], members: int = 1):
        """Config (the id's preset, then `hyperparameters`), seeding, the training environment
        (`num_envs` copies per member when `members` seeds train at once) and the counters; the
        subclass then builds its networks."""
        self.env_id = env if isinstance(env, str) else env.env_id
        self.config = build_config(self.config_class, hyperparameters, preset_for(self.algo, self.env_id))
        cfg = self.config
        if cfg.clip_reward is None:
            cfg.clip_reward = self.env_id.startswith("ALE/")
        seed_everything(cfg.seed)
        self.device = torch.device(cfg.device)
        self.env = make_training_env(env, cfg, members) if isinstance(env, str) else env
        check_action_space(self.algo, self.env.single_action_space, self.action_spaces)
        self.global_step = 0  # environment steps, all copies counted
        self.num_updates = 0
        self.total_steps = 0
        self.obs: torch.Tensor | None = None  # the observation the next step acts on
        self.nan_guard = NanGuard(self.device)

    def progress_left(self) -> float:
        """1 at the start of the run, falling linearly to 0 at `total_steps`: what annealed settings scale by."""
        return max(1.0 - self.global_step / max(self.total_steps, 1), 0.0)

    def anneal_learning_rate(self) -> None:
        """With `anneal_lr`, the optimiser's step size falls linearly from `learning_rate` to 0 over the run."""
        if self.config.anneal_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.learning_rate * self.progress_left()

    def replay_state(self) -> dict[str, Any] | None:
        """The replay buffer's contents for a training checkpoint; None for agents without one."""
        return None

    def load_replay_state(self, state: dict[str, Any]) -> None:
        raise ValueError(f"{self.algo} keeps no replay buffer, but the checkpoint holds one.")

    def save(self, path: str | Path, include_buffer: bool = False) -> Path:
        """Model, optimiser, counters, RNG and environment state; the replay buffer too when asked."""
        payload = {
            "algo": self.algo, "env_id": self.env_id, "config": dataclasses.asdict(self.config),
            "state": {name: getattr(self, name).state_dict() for name in self.checkpoint_state},
            "counters": {name: getattr(self, name) for name in self.counters},
            **training_state(self.env, self.obs),
        }
        replay = self.replay_state() if include_buffer else None
        if replay is not None:
            payload["buffer"] = replay
        return save_checkpoint(path, payload)

    @classmethod
    def load(cls, path: str | Path, env: str | VecEnv | None = None, **overrides: Any) -> "Agent":
        """Rebuild an agent from `save` or a run directory; `overrides` may change e.g. `device`."""
        payload = load_checkpoint(path, map_location=overrides.get("device", "cpu"))
        return cls.from_checkpoint(payload, path, env, **overrides)

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], path: str | Path, env: str | VecEnv | None = None,
                        **overrides: Any) -> "Agent":
        """`load` for a checkpoint already read (the CLI reads it once to find the agent)."""
        if payload.get("algo") != cls.algo:
            raise ValueError(f"Checkpoint '{path}' holds a {payload.get('algo')!r} agent, not {cls.algo!r}: "
                             "load it with that agent's class.")
        # Checkpoints from before the torch-native environments ran on gymnasium's.
        config = {"backend": "gymnasium", **payload["config"], **overrides}
        agent = cls(env if env is not None else payload["env_id"], **config)
        for name, state in payload["state"].items():
            if getattr(agent, name, None) is None:
                raise ValueError(f"Checkpoint '{path}' holds {name!r} state that this agent's settings leave out (e.g. "
                                 "a round collected with async_rollout): load it with the settings it was saved with.")
            getattr(agent, name).load_state_dict(state)
        for name, value in payload["counters"].items():
            setattr(agent, name, value)
        if "buffer" in payload:
            agent.load_replay_state(payload["buffer"])
        agent.obs = restore_training_state(agent.env, payload, agent.device)
        agent.run_dir = Path(path).parent if Path(path).is_file() else Path(path)
        return agent

    def make_eval_env(self, env_id: str | None = None, num_envs: int = 1, seed: int | None = None) -> VecEnv:
        """An environment built like the training one, with normalisation statistics frozen."""
        return make_eval_env(self.env, env_id or self.env_id, self.config, num_envs=num_envs, seed=seed)
