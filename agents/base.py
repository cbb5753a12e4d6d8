"""The agent base class: settings, the training environment, save, load and evaluation
environments. The algorithm itself (acting, losses, the learn loop) stays in each agent's file.

An agent's settings come in groups, each owned by the code it configures: the agent's config
(an `AgentConfig` subclass; PPO's carries the KL settings as a part), and for Text-v0 the text
environment's (`envs.text.TextEnvConfig`) and the language-model policy's
(`rlcore.lm.LMPolicyConfig`). Users pass flat names for all of them (`PPO("Text-v0",
model=..., kl_coef=0.1, n_epochs=2)`); each goes to the group that owns it.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

import envs
from agents.presets import preset_for
from envs import TEXT_ENV_ID
from envs.core import VecEnv
from envs.rewards import code_terms
from envs.text import TextEnvConfig
from envs.wrappers import ClipReward, ObservationNormalization, RewardNormalization
from rlcore.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint, save_checkpoint
from rlcore.config import build_config, check, flatten, split_settings
from rlcore.lm import LMPolicyConfig
from rlcore.nan_guard import NanGuard
from rlcore.run import TrainingRun
from rlcore.seeding import rng_state, seed_everything, set_rng_state

# Text-v0 settings that format-1 checkpoints kept flat in PPO's config, for every environment.
FORMAT1_TEXT_KEYS = ("model", "prompts", "reward", "max_new_tokens", "group_size", "critic", "temperature", "top_k",
                     "top_p", "kl_coef", "kl_target", "kl_horizon", "kl_estimator", "kl_penalty",
                     "missing_eos_penalty", "reward_normalization", "lora_r")


@dataclass
class AgentConfig:
    """Settings every agent has. A subclass redeclares a field to change its default."""

    num_envs: int = 8
    """Environment copies stepped together."""
    gamma: float = 0.99
    """Discount factor."""
    learning_rate: float = 3e-4
    """Optimiser step size (annealed linearly to 0 when anneal_lr)."""
    anneal_lr: bool = False
    """Anneal the learning rate linearly to 0 over training."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """MLP hidden layer widths (image observations use the Nature CNN)."""
    normalize_obs: bool = False
    """Normalise observations by running mean and std (saved in checkpoints)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (saved in checkpoints)."""
    clip_reward: bool | None = None
    """Train on the sign of the reward; None means on for Atari (ALE/...) ids."""
    seed: int = 0
    """Seed of the networks, sampling and environments."""
    device: str = "cpu"
    """Torch device of the networks, buffers and environment tensors."""
    backend: str = "auto"
    """Environment implementation: torch (native batched tensors), gymnasium, or auto (torch where one exists)."""
    log_interval: int = 2_048
    """Environment steps between TensorBoard writes (checked after each update)."""
    checkpoint_interval: int = 100_000
    """Environment steps between training checkpoints (0: only at the end and on Ctrl-C)."""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        for name in ("num_envs", "log_interval"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "checkpoint_interval", self.checkpoint_interval >= 0, ">= 0")
        check(self, "gamma", 0 < self.gamma <= 1, "in (0, 1]")
        check(self, "learning_rate", self.learning_rate > 0, "> 0")
        check(self, "max_grad_norm", self.max_grad_norm is None or self.max_grad_norm > 0, "> 0 (or None where the agent "
              "allows no clipping)")
        check(self, "hidden_sizes", all(1 <= h <= 65_536 for h in self.hidden_sizes), "widths from 1 to 65,536")
        check(self, "num_envs", self.num_envs <= 2**24, "<= 16,777,216")
        check(self, "seed", 0 <= self.seed < 2**32, "from 0 to 2**32 - 1")
        check(self, "device", _device_available(self.device), "a torch device this machine has (cpu, or cuda with a GPU)")
        check(self, "backend", self.backend in envs.BACKENDS, f"one of {', '.join(envs.BACKENDS)}")


def _device_available(name: str) -> bool:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return (device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available())
            or (device.type == "mps" and torch.backends.mps.is_available()))


def setting_groups(config_class: type, env_id: str) -> dict[str, type]:
    """The settings an agent with `config_class` takes for `env_id`: group name -> config class."""
    if env_id == TEXT_ENV_ID:
        return {"agent": config_class, "env": TextEnvConfig, "policy": LMPolicyConfig}
    return {"agent": config_class}


def obs_to_tensor(obs: torch.Tensor | np.ndarray, space: gym.Space, device: torch.device) -> tuple[torch.Tensor, bool, bool]:
    """(batched tensor on device, whether the input was one unbatched observation, whether it was numpy)."""
    was_numpy = not isinstance(obs, torch.Tensor)
    t = torch.as_tensor(np.asarray(obs) if was_numpy else obs, device=device)
    if t.dtype == torch.float64:
        t = t.float()
    shape = tuple(space.shape)
    unbatched = tuple(t.shape) == shape
    if not unbatched and tuple(t.shape[1:]) != shape:
        raise ValueError(f"predict: observation shape {tuple(t.shape)} is neither one observation {shape} nor a "
                         f"batch (N, {', '.join(map(str, shape))}) of them.")
    if t.device.type == "cpu" and t.is_floating_point() and not bool(torch.isfinite(t).all()):  # free on a CPU
        raise ValueError("predict: the observation holds NaN or inf; an action for it would be meaningless.")
    return (t.unsqueeze(0) if unbatched else t), unbatched, was_numpy


def migrate_settings(payload: dict[str, Any]) -> dict[str, Any]:
    """The flat settings a checkpoint's agent was built with, from any format this version reads.

    Formats 2 and 3 keep each group apart (`config`, `env_config`, `policy_config`). Format 1 kept them
    flat in the agent's config, the Text-v0 ones in every PPO config: outside Text-v0 those are
    dropped (they were ignored there). Before the torch-native environments, runs used gymnasium's.
    """
    if payload.get("format_version", 1) >= 2:
        return {**payload["config"], **(payload.get("env_config") or {}), **(payload.get("policy_config") or {})}
    settings = {"backend": "gymnasium", **payload["config"]}
    if payload["env_id"] != TEXT_ENV_ID:
        settings = {k: v for k, v in settings.items() if k not in FORMAT1_TEXT_KEYS}
    return settings


class Agent:
    """A subclass sets `algo`, `config_class`, `action_spaces` and `checkpoint_state` (the attributes
    with `state_dict`/`load_state_dict` a checkpoint keeps: networks, optimisers, the NaN guard),
    builds its networks after `super().__init__`, and writes `predict` and `learn`.

    Counters: `global_step` (environment steps, all copies), `num_updates`, `total_steps` (the
    target of the current `learn`). `obs` is the observation the next step acts on (None: reset).
    """

    algo: ClassVar[str]
    config_class: ClassVar[type]
    action_spaces: ClassVar[tuple[type, ...]]
    trains_text: ClassVar[bool] = False
    """Whether the agent trains a language model on Text-v0 (its loss handles whole text episodes)."""
    checkpoint_state: tuple[str, ...] = ()
    counters: tuple[str, ...] = ("global_step", "num_updates", "total_steps")
    registry: ClassVar[dict[str, type["Agent"]]] = {}
    """Every agent class by `algo`, filled as they are defined (`agents.AGENTS`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "algo" in cls.__dict__:  # an agent, not a base shared by several
            Agent.registry[cls.algo] = cls

    def __init__(self, env: str | VecEnv, hyperparameters: dict[str, Any], members: int = 1):
        """Settings (the id's preset, then `hyperparameters`), seeding, the training environment
        (`num_envs` copies per member when `members` seeds train at once) and the counters."""
        self.env_id = env if isinstance(env, str) else env.env_id
        text = self.env_id == TEXT_ENV_ID
        if text and not self.trains_text:
            raise ValueError(f"{TEXT_ENV_ID} is trained by PPO (its loss handles whole text episodes): rl train ppo.")
        groups = setting_groups(self.config_class, self.env_id)
        where = f"{self.algo.upper()} on {self.env_id}"
        given = split_settings(groups, hyperparameters, where)
        preset = split_settings(groups, preset_for(self.algo, self.env_id), where)
        self.config = build_config(self.config_class, given["agent"], preset["agent"])
        self.env_config = build_config(TextEnvConfig, given["env"], preset["env"]) if text else None
        self.policy_config = build_config(LMPolicyConfig, given["policy"], preset["policy"]) if text else None
        cfg = self.config
        if cfg.clip_reward is None:
            cfg.clip_reward = self.env_id.startswith("ALE/")
        seed_everything(cfg.seed)
        self.device = torch.device(cfg.device)
        self.env = self.make_training_env(members) if isinstance(env, str) else env
        check_action_space(self.algo, self.env.single_action_space, self.action_spaces)
        self.global_step = 0
        self.num_updates = 0
        self.total_steps = 0
        self.obs: torch.Tensor | None = None
        self.nan_guard = NanGuard(self.device)
        self.seeds: tuple[int, ...] | None = None  # several seeds trained at once (PPO)
        self.run_dir: Path | None = None  # where the last learn wrote, or the checkpoint's directory
        self.run_dirs: list[Path] = []
        self.summary: dict[str, Any] | list[dict[str, Any]] | None = None

    def settings(self) -> dict[str, Any]:
        """Every setting as the flat names the constructor takes: `type(self)(env_id, **agent.settings())` rebuilds it."""
        out = flatten(self.config)
        for group in (self.env_config, self.policy_config):
            if group is not None:
                out.update(dataclasses.asdict(group))
        return out

    def hparams(self, total_steps: int) -> dict[str, Any]:
        """What TensorBoard's text tab and config.json record of a run."""
        return {"algo": self.algo, "env_id": self.env_id, "total_steps": total_steps, **self.settings()}

    def member(self, m: int) -> "Agent":
        """Seed `m` of the seeds trained at once, as an agent of its own; a single-seed agent is its only member."""
        if m != 0:
            raise IndexError(f"{self.algo.upper()} trains one seed: member({m}) does not exist.")
        return self

    def prepare_run(self, run: TrainingRun) -> None:
        """At the start of `learn`: take the run's step target and directories, and the first observation
        (a reset, unless a resumed agent continues its episodes)."""
        self.total_steps, self.run_dir, self.run_dirs = run.total_steps, run.run_dir, run.run_dirs
        if self.obs is None:
            self.obs = self.reset_env()

    # ----- environments ----------------------------------------------------------------------
    def make_training_env(self, members: int = 1) -> VecEnv:
        """`num_envs` copies per member, observation normalisation inside (innermost: logged returns stay
        the raw score), reward normalisation and clipping outside."""
        cfg = self.config
        if self.env_config is not None:
            from agents.rlhf import make_text_env  # transformers is imported only for language models

            return make_text_env(self.env_config, self.policy_config, cfg.num_envs, cfg.seed, cfg.device)
        env = envs.make(self.env_id, num_envs=cfg.num_envs * members, seed=cfg.seed, device=cfg.device,
                        normalize_obs=cfg.normalize_obs, backend=cfg.backend)
        if cfg.normalize_reward:
            env = RewardNormalization(env, gamma=cfg.gamma)
        return ClipReward(env) if cfg.clip_reward else env

    def make_eval_env(self, env_id: str | None = None, num_envs: int = 1, seed: int | None = None,
                      **env_kwargs: Any) -> VecEnv:
        """Built like the training environment, without reward clipping, with observation statistics copied and
        frozen; `env_kwargs` go to `envs.make` (e.g. `render_mode`)."""
        cfg = self.config
        env = envs.make(env_id or self.env_id, num_envs=num_envs, seed=seed, device=cfg.device,
                        normalize_obs=cfg.normalize_obs, backend=cfg.backend, **env_kwargs)
        source, target = self.env.find(ObservationNormalization), env.find(ObservationNormalization)
        if source is not None and target is not None:
            # Only the statistics: the wrapper's full state_dict also carries the training copies' own state.
            target.obs_rms.load_state_dict(source.obs_rms.state_dict())
            target.training = False
        return env

    def reset_env(self) -> torch.Tensor:
        """The observation a run starts from. A new run starts from a seeded reset; a resumed run whose
        environments could not come back mid-episode resets without reseeding, so their restored state
        (a text environment's prompt order) goes on."""
        obs, _ = self.env.reset(seed=None if self.global_step else self.config.seed)
        return obs

    # ----- schedules -------------------------------------------------------------------------
    def progress_left(self, step: int | None = None) -> float:
        """1 at the start of the run, falling linearly to 0 at `total_steps`: what annealed settings scale by."""
        step = self.global_step if step is None else step
        return max(1.0 - step / max(self.total_steps, 1), 0.0)

    def anneal_learning_rate(self, optimizer: torch.optim.Optimizer, step: int | None = None) -> None:
        """With `anneal_lr`, the optimiser's step size falls linearly from `learning_rate` to 0 over the run."""
        if self.config.anneal_lr:
            for group in optimizer.param_groups:
                group["lr"] = self.config.learning_rate * self.progress_left(step)

    # ----- saving and loading ----------------------------------------------------------------
    def replay_state(self) -> dict[str, Any] | None:
        """The replay buffer's contents for a training checkpoint; None for agents without one."""
        return None

    def load_replay_state(self, state: dict[str, Any]) -> None:
        raise ValueError(f"{self.algo} keeps no replay buffer, but the checkpoint holds one.")

    def save(self, path: str | Path, include_buffer: bool = False) -> Path:
        """Settings, networks, optimiser, counters, RNG and environment state (episodes in flight,
        statistics) and the current observation; the replay buffer too when asked."""
        payload = {
            "algo": self.algo, "env_id": self.env_id, "config": dataclasses.asdict(self.config),
            "env_config": dataclasses.asdict(self.env_config) if self.env_config is not None else None,
            "policy_config": dataclasses.asdict(self.policy_config) if self.policy_config is not None else None,
            "state": {name: getattr(self, name).state_dict() for name in self.checkpoint_state},
            "counters": {name: getattr(self, name) for name in self.counters},
            "rng": rng_state(), "env_state": self.env.state_dict(), "obs": self.obs,
        }
        replay = self.replay_state() if include_buffer else None
        if replay is not None:
            payload["buffer"] = replay
        return save_checkpoint(path, payload)

    @classmethod
    def load(cls, path: str | Path, env: str | VecEnv | None = None, trust: bool = False, best: bool = False,
             **overrides: Any) -> "Agent":
        """Rebuild an agent from `save` or a run directory (with `best`, the run's `best_model.pt`: its best
        evaluation); `overrides` may change e.g. `device`. Loading runs no code from the file;
        `trust=True` also reads older checkpoints, which hold pickled objects (`rlcore.checkpoint`)."""
        path = resolve_checkpoint(path, best=best) if best else path
        payload = load_checkpoint(path, map_location=overrides.get("device", "cpu"), trust=trust)
        return cls.from_checkpoint(payload, path, env, trust=trust, **overrides)

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], path: str | Path, env: str | VecEnv | None = None,
                        trust: bool = False, **overrides: Any) -> "Agent":
        """`load` for a checkpoint already read (the CLI reads it once to find the agent). A Text-v0 run
        whose reward is a `module:function` would import and run that module: refused unless `trust`
        or another `reward` is given."""
        if payload.get("algo") != cls.algo:
            raise ValueError(f"Checkpoint '{path}' holds a {payload.get('algo')!r} agent, not {cls.algo!r}: "
                             "load it with that agent's class.")
        missing = [key for key in ("env_id", "config", "state", "counters", "rng", "env_state") if key not in payload]
        if missing:
            raise CheckpointError(f"Checkpoint '{path}' lacks {', '.join(missing)}: it was not written by `save` (or "
                                  "was cut short). It was left untouched; resume from an earlier copy.")
        settings = {**migrate_settings(payload), **overrides}
        code = code_terms(settings["reward"]) if isinstance(settings.get("reward"), str) and env is None else []
        if code and not trust:
            raise CheckpointError(f"Run '{path}' scores with reward code ({', '.join(code)}): loading it imports and runs "
                                  "that module. Pass --trust-checkpoint (Python: trust=True) if you trust it, or give "
                                  "another reward (Python: reward='vader').")
        agent = cls(env if env is not None else payload["env_id"], **settings)
        for name, state in payload["state"].items():
            if getattr(agent, name, None) is None:
                raise ValueError(f"Checkpoint '{path}' holds {name!r} state that this agent's settings leave out (e.g. "
                                 "a round collected with async_rollout): load it with the settings it was saved with.")
            getattr(agent, name).load_state_dict(state)
        for name, value in payload["counters"].items():
            setattr(agent, name, value)
        if "buffer" in payload:
            agent.load_replay_state(payload["buffer"])
        set_rng_state(payload["rng"])
        agent.env.load_state_dict(payload["env_state"])
        obs = payload.get("obs")
        # The saved observation is only valid if the environments came back mid-episode too.
        if obs is not None and agent.env.unwrapped.resumed_mid_episode:
            agent.obs = obs.to(agent.device)
        elif obs is not None and payload["counters"].get("global_step", 0) < payload["counters"].get("total_steps", 0):
            warnings.warn(f"{agent.env_id}: the environments restart their episodes on resume (gymnasium's cannot be "
                          "saved without pickling them); the torch-native ones (backend='torch') continue exactly.",
                          RuntimeWarning, stacklevel=2)
        agent.run_dir = Path(path).parent if Path(path).is_file() else Path(path)
        return agent


def check_action_space(algo: str, space: gym.Space, allowed: tuple[type, ...]) -> None:
    """A clear error for an action space the agent cannot handle, naming the agents that can."""
    if not isinstance(space, allowed):
        fits = sorted(name for name, cls in Agent.registry.items() if isinstance(space, cls.action_spaces))
        hint = f"Agents that fit: {', '.join(fits)}." if fits else "No agent here handles it yet."
        raise ValueError(
            f"{algo.upper()} needs a {' or '.join(a.__name__ for a in allowed)} action space, "
            f"but the environment has {space}. {hint}")


def check_bounded_actions(algo: str, space: gym.spaces.Box) -> None:
    """Squashed actions are rescaled onto the Box's bounds, so every dimension needs finite ones."""
    if not space.is_bounded("both"):
        raise ValueError(f"{algo.upper()} squashes its actions into the Box's bounds, but {space} is unbounded: clip or "
                         "rescale the actions to finite bounds first (gymnasium.wrappers.ClipAction or RescaleAction).")


def check_learning_starts(algo: str, learning_starts: int, total_steps: int) -> None:
    """An off-policy run that would end before its first update is refused before anything is written."""
    if learning_starts >= total_steps:
        raise ValueError(f"{algo.upper()}: learning_starts ({learning_starts:,}) is not below total_steps "
                         f"({total_steps:,}), so no update would run: lower learning_starts or raise total_steps.")


__all__ = ["Agent", "AgentConfig", "check_action_space", "check_bounded_actions", "check_learning_starts",
           "migrate_settings", "obs_to_tensor", "setting_groups"]
