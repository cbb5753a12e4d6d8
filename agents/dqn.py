"""Deep Q-Network.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature), with
the options of Rainbow's ablations (Hessel et al. 2018):
- `double`: Double DQN targets (van Hasselt et al. 2016), the online net picks a', the target net scores it;
- `dueling`: dueling heads Q = V + A - mean(A) (Wang et al. 2016);
- `n_step`: n-step returns, cut at episode ends (Sutton 1988; Hessel et al. 2018);
- `prioritized`: proportional prioritised replay with annealed importance weights (Schaul et al. 2016).

The file reads top to bottom: config, network, the agent (acting, loss, update, learn loop),
saving and loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.common import (
    Evaluations, check_action_space, interrupted_message, make_eval_env, make_training_env, obs_to_tensor, resolve_run_dir,
    restore_training_state, training_state,
)
from agents.presets import preset_for
from envs.core import VecEnv
from envs.wrappers import EpisodeStatistics
from rlcore.buffers import PrioritizedReplayBuffer, ReplayBuffer
from rlcore.checkpoint import CHECKPOINT_NAME, MODEL_NAME, load_checkpoint, save_checkpoint
from rlcore.config import build_config, check, to_dict
from rlcore.interrupt import GracefulInterrupt
from rlcore.logger import Logger, ProgressBar
from rlcore.nets import hard_update, is_image_space, make_torso, polyak_update
from rlcore.schedules import linear_schedule
from rlcore.seeding import seed_everything


@dataclass
class DQNConfig:
    learning_rate: float = 1e-4
    """Adam step size."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (all environment copies together)."""
    learning_starts: int = 1_000
    """Environment steps of random-ish play before the first update."""
    batch_size: int = 64
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    train_freq: int = 4
    """Update every this many vector-environment steps."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    target_update_interval: int = 1_000
    """Environment steps between target-network updates (as in SB3: counted over all copies)."""
    tau: float = 1.0
    """Target update rate: 1 is a hard copy, below 1 Polyak averaging."""
    exploration_fraction: float = 0.1
    """Fraction of training over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip."""
    double: bool = False
    """Double DQN targets."""
    dueling: bool = False
    """Dueling value/advantage heads."""
    n_step: int = 1
    """Steps in the bootstrapped return."""
    prioritized: bool = False
    """Proportional prioritised replay."""
    per_alpha: float = 0.6
    """Priority exponent (prioritized only)."""
    per_beta: float = 0.4
    """Initial importance-sampling exponent, annealed to 1 over training (prioritized only)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """MLP hidden layer widths (image observations use the Nature CNN)."""
    num_envs: int = 1
    """Environment copies stepped together."""
    seed: int = 0
    """Seed of the networks, exploration, replay sampling and environments."""
    device: str = "cpu"
    """Torch device of the networks, buffer and environment tensors."""
    normalize_obs: bool = False
    """Normalise observations by running mean and std (saved in checkpoints)."""
    clip_reward: bool | None = None
    """Train on the sign of the reward; None means on for Atari (ALE/...) ids."""
    optimize_memory_usage: bool = False
    """Store each observation once (next observations are read from the following slot)."""
    save_replay_buffer: bool = True
    """Put the replay buffer in training checkpoints, so a resumed run continues exactly."""
    log_interval: int = 1_000
    """Environment steps between TensorBoard writes."""
    checkpoint_interval: int = 10_000
    """Environment steps between training checkpoints (0: only at the end and on Ctrl-C)."""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps", "target_update_interval",
                     "n_step", "num_envs", "log_interval"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        for name in ("learning_starts", "checkpoint_interval"):
            check(self, name, getattr(self, name) >= 0, ">= 0")
        check(self, "learning_rate", self.learning_rate > 0, "> 0")
        check(self, "gamma", 0 < self.gamma <= 1, "in (0, 1]")
        check(self, "tau", 0 < self.tau <= 1, "in (0, 1]")
        check(self, "exploration_fraction", 0 <= self.exploration_fraction <= 1, "in [0, 1]")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            check(self, name, 0 <= getattr(self, name) <= 1, "in [0, 1]")
        check(self, "max_grad_norm", self.max_grad_norm > 0, "> 0")
        check(self, "per_alpha", self.per_alpha >= 0, ">= 0")
        check(self, "per_beta", 0 <= self.per_beta <= 1, "in [0, 1]")
        check(self, "hidden_sizes", all(h >= 1 for h in self.hidden_sizes), "positive widths")
        check(self, "batch_size", self.batch_size <= self.buffer_size, f"<= buffer_size ({self.buffer_size})")


class QNetwork(nn.Module):
    """Torso (MLP or Nature CNN) and a Q head, plain or dueling."""

    def __init__(self, observation_space: gym.Space, n_actions: int, hidden_sizes: tuple[int, ...], dueling: bool):
        super().__init__()
        self.torso = make_torso(observation_space, hidden_sizes)
        self.dueling = dueling
        self.head = nn.Linear(self.torso.out_dim, n_actions)
        self.value = nn.Linear(self.torso.out_dim, 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.torso(obs)
        q = self.head(h)
        if self.value is not None:
            # Subtracting the mean advantage makes V and A identifiable (Wang et al. 2016, eq. 9).
            q = self.value(h) + q - q.mean(dim=1, keepdim=True)
        return q


class DQN:
    """`DQN(env, **hyperparameters)`; `env` is an environment id or a VecEnv with a Discrete action space."""

    algo = "dqn"
    config_class = DQNConfig

    def __init__(self, env: str | VecEnv, **hyperparameters: Any):
        env_id = env if isinstance(env, str) else env.env_id
        self.config = build_config(DQNConfig, hyperparameters, preset_for(self.algo, env_id))
        cfg = self.config
        if cfg.clip_reward is None:
            cfg.clip_reward = env_id.startswith("ALE/")
        seed_everything(cfg.seed)
        self.device = torch.device(cfg.device)
        self.env_id = env_id
        self.env = make_training_env(env, cfg) if isinstance(env, str) else env
        check_action_space(self.algo, self.env.single_action_space, (gym.spaces.Discrete,))
        obs_space = self.env.single_observation_space
        self.n_actions = int(self.env.single_action_space.n)

        self.q = QNetwork(obs_space, self.n_actions, cfg.hidden_sizes, cfg.dueling).to(self.device)
        self.q_target = QNetwork(obs_space, self.n_actions, cfg.hidden_sizes, cfg.dueling).to(self.device)
        hard_update(self.q_target, self.q)
        self.q_target.requires_grad_(False)
        # fused: one kernel for the whole parameter list instead of several small ops per tensor.
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=cfg.learning_rate, fused=True)

        # The replay buffer is built when training starts: evaluating a loaded agent needs none.
        self.buffer: ReplayBuffer | None = None

        self.global_step = 0       # environment steps, all copies counted
        self.iteration = 0         # vector-environment steps
        self.num_updates = 0       # gradient steps
        self.total_steps = 0
        self.obs: torch.Tensor | None = None
        # First gradient step whose loss was not finite, kept on the device (-1: none) so the
        # hot loop never syncs; checked when logging and before every checkpoint.
        self.first_nan_step = torch.full((), -1, dtype=torch.long, device=self.device)

    def _make_buffer(self) -> ReplayBuffer:
        cfg = self.config
        obs_space = self.env.single_observation_space
        buffer_cls = PrioritizedReplayBuffer if cfg.prioritized else ReplayBuffer
        extra = {"alpha": cfg.per_alpha, "beta": cfg.per_beta} if cfg.prioritized else {}
        obs_dtype = torch.uint8 if is_image_space(obs_space) else torch.float32
        return buffer_cls(
            cfg.buffer_size, self.env.num_envs, tuple(obs_space.shape), obs_dtype, (), torch.long, self.device,
            n_step=cfg.n_step, gamma=cfg.gamma, optimize_memory_usage=cfg.optimize_memory_usage, **extra)

    # ----- acting -------------------------------------------------------------------------
    def epsilon(self) -> float:
        cfg = self.config
        progress = self.global_step / max(self.total_steps, 1)
        return linear_schedule(cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_fraction, progress)

    @torch.no_grad()
    def _act(self, obs: torch.Tensor, epsilon: float) -> torch.Tensor:
        greedy = self.q(obs).argmax(dim=1)
        if epsilon == 0.0:  # greedy: draw no random numbers, so evaluating never shifts the training RNG stream
            return greedy
        random_actions = torch.randint(self.n_actions, greedy.shape, device=self.device)
        explore = torch.rand(greedy.shape, device=self.device) < epsilon
        return torch.where(explore, random_actions, greedy)

    def predict(self, obs: torch.Tensor | np.ndarray, deterministic: bool = True) -> torch.Tensor | np.ndarray:
        """Actions for a batch of observations (or one unbatched observation).

        Greedy when deterministic, else epsilon-greedy with the final epsilon. numpy in, numpy out.
        """
        obs_t, unbatched, was_numpy = obs_to_tensor(obs, self.env.single_observation_space, self.device)
        action = self._act(obs_t, 0.0 if deterministic else self.config.exploration_final_eps)
        action = action[0] if unbatched else action
        return action.cpu().numpy() if was_numpy else action

    # ----- learning -----------------------------------------------------------------------
    def _loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        batch = self.buffer.sample(cfg.batch_size)
        with torch.no_grad():
            next_q_target = self.q_target(batch.next_obs)
            if cfg.double:
                next_actions = self.q(batch.next_obs).argmax(dim=1, keepdim=True)
                next_value = next_q_target.gather(1, next_actions).squeeze(1)
            else:
                next_value = next_q_target.max(dim=1).values
            # discounts is gamma**m, and 0 where the episode terminated: a time-limit truncation
            # still bootstraps from the true final observation.
            target = batch.rewards + batch.discounts * next_value
        q_taken = self.q(batch.obs).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
        td_error = q_taken - target
        loss = (batch.weights * F.smooth_l1_loss(q_taken, target, reduction="none")).mean()
        if cfg.prioritized:
            self.buffer.update_priorities(batch.indices, td_error.detach().abs())
        return loss, {"losses/td_loss": loss.detach(), "losses/q_values": q_taken.detach().mean()}

    def _update(self) -> dict[str, torch.Tensor]:
        loss, stats = self._loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.q.parameters(), self.config.max_grad_norm, foreach=True)
        self.optimizer.step()
        self.num_updates += 1
        bad = ~torch.isfinite(loss)
        self.first_nan_step = torch.where(bad & (self.first_nan_step < 0), self.global_step, self.first_nan_step)
        return stats

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None) -> "DQN":
        """Train until `total_steps` environment steps of this run (a resumed agent continues up to it).

        Writes TensorBoard events, checkpoints and `summary.json` to `run_dir` (default
        `runs/<env>__dqn__<seed>__<time>`). With `eval_every`, evaluates deterministically over
        `eval_episodes` episodes every so many steps, and stops early once the mean reaches `stop_at_return`.
        """
        cfg = self.config
        if total_steps < 1:
            raise ValueError(f"total_steps = {total_steps} is invalid: must be >= 1.")
        self.total_steps = total_steps
        self.run_dir = resolve_run_dir(run_dir, getattr(self, "run_dir", None), self.env_id, self.algo, cfg.seed)
        logger = Logger(self.run_dir, {"algo": self.algo, "env_id": self.env_id, "total_steps": total_steps, **to_dict(cfg)})
        stats_env = self.env.find(EpisodeStatistics)
        bar = ProgressBar(total_steps, initial=self.global_step, enabled=progress)
        if self.buffer is None:
            self.buffer = self._make_buffer()
        if self.obs is None:
            self.obs, _ = self.env.reset(seed=cfg.seed)
        n = self.env.num_envs
        target_every = max(cfg.target_update_interval // n, 1)
        log_every = max(cfg.log_interval // n, 1)
        ckpt_every = max(cfg.checkpoint_interval // n, 1) if cfg.checkpoint_interval else 0
        stats: dict[str, torch.Tensor] = {}
        evals = Evaluations(self, logger, eval_every, eval_episodes, stop_at_return)
        step_start = self.global_step
        try:
            with GracefulInterrupt() as interrupt:
                while self.global_step < total_steps:
                    epsilon = self.epsilon()
                    action = self._act(self.obs, epsilon)
                    next_obs, reward, terminated, truncated, info = self.env.step(action)
                    self.buffer.add(self.obs, action, reward, info["final_obs"], terminated, truncated)
                    self.obs = next_obs
                    self.global_step += n
                    self.iteration += 1

                    if self.global_step >= cfg.learning_starts and self.iteration % cfg.train_freq == 0:
                        if cfg.prioritized:
                            self.buffer.beta = linear_schedule(cfg.per_beta, 1.0, 1.0, self.global_step / total_steps)
                        for _ in range(cfg.gradient_steps):
                            stats = self._update()
                    if self.global_step >= cfg.learning_starts and self.iteration % target_every == 0:
                        if cfg.tau >= 1.0:
                            hard_update(self.q_target, self.q)
                        else:
                            polyak_update(self.q_target, self.q, cfg.tau)

                    if self.iteration % log_every == 0 or self.global_step >= total_steps:
                        self._log(logger, bar, stats_env, stats, epsilon, evals.train_time(), step_start)
                    if evals.due(self.global_step) and evals.run(self.global_step):
                        break
                    if ckpt_every and self.iteration % ckpt_every == 0:
                        self.save_checkpoint()
                    if interrupt.requested:
                        raise KeyboardInterrupt
            self.save_checkpoint()
            self.save(self.run_dir / MODEL_NAME, include_buffer=False)
            self.summary = evals.write_summary(self.global_step, final_eval=eval_every > 0)
        except KeyboardInterrupt:
            path = self.save_checkpoint()
            print(interrupted_message(self.algo, self.env_id, self.global_step, path, self.run_dir), flush=True)
            raise
        finally:
            logger.close()
            bar.close()
        return self

    def _log(self, logger: Logger, bar: ProgressBar, stats_env: EpisodeStatistics | None,
             stats: dict[str, torch.Tensor], epsilon: float, train_time: float, step_start: int) -> None:
        self._raise_if_nan()
        sps = (self.global_step - step_start) / max(train_time, 1e-9)
        scalars: dict[str, Any] = {**stats, "charts/epsilon": epsilon, "charts/SPS": sps}
        if stats_env is not None:
            ret_sum, len_sum, count = stats_env.pop_finished()
            values = logger.log(self.global_step, {"perf/_count": count})  # one sync to skip empty windows
            if values["perf/_count"] > 0:
                scalars["charts/episodic_return"] = ret_sum / count
                scalars["charts/episodic_length"] = len_sum / count
        logger.log(self.global_step, scalars)
        bar.update(self.global_step, sps, stats_env.recent_mean_return() if stats_env else None)

    def _raise_if_nan(self) -> None:
        step = int(self.first_nan_step)
        if step >= 0:
            raise FloatingPointError(
                f"DQN loss became NaN/inf at environment step {step}. Training stopped; the last good checkpoint "
                f"is {self.run_dir / CHECKPOINT_NAME} (not overwritten). Lower learning_rate, check rewards and "
                "observations for NaN, or set normalize_obs=True.")

    # ----- saving and loading --------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Everything a resume needs, in `<run_dir>/checkpoint.pt`; refused once a loss went NaN."""
        self._raise_if_nan()
        return self.save(self.run_dir / CHECKPOINT_NAME, include_buffer=self.config.save_replay_buffer)

    def save(self, path: str | Path, include_buffer: bool = False) -> Path:
        payload = {
            "algo": self.algo,
            "env_id": self.env_id,
            "config": to_dict(self.config),
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": {"global_step": self.global_step, "iteration": self.iteration,
                         "num_updates": self.num_updates, "total_steps": self.total_steps},
            **training_state(self.env, self.obs),
        }
        if include_buffer and self.buffer is not None:
            payload["buffer"] = self.buffer.state_dict()
        return save_checkpoint(path, payload)

    @classmethod
    def load(cls, path: str | Path, env: str | VecEnv | None = None, **overrides: Any) -> "DQN":
        """Rebuild an agent from `save`/a run directory; `overrides` may change e.g. `device`."""
        payload = load_checkpoint(path, map_location=overrides.get("device", "cpu"))
        if payload.get("algo") != cls.algo:
            raise ValueError(f"Checkpoint '{path}' holds a {payload.get('algo')!r} agent, not {cls.algo!r}: "
                             f"load it with that agent's class.")
        config = {**payload["config"], **overrides}
        agent = cls(env if env is not None else payload["env_id"], **config)
        agent.q.load_state_dict(payload["q"])
        agent.q_target.load_state_dict(payload["q_target"])
        agent.optimizer.load_state_dict(payload["optimizer"])
        counters = payload["counters"]
        agent.global_step, agent.iteration = counters["global_step"], counters["iteration"]
        agent.num_updates, agent.total_steps = counters["num_updates"], counters["total_steps"]
        if "buffer" in payload:
            agent.buffer = agent._make_buffer()
            agent.buffer.load_state_dict(payload["buffer"])
        agent.obs = restore_training_state(agent.env, payload, agent.device)
        agent.run_dir = Path(path).parent if Path(path).is_file() else Path(path)
        return agent

    def make_eval_env(self, env_id: str | None = None, num_envs: int = 1, seed: int | None = None) -> VecEnv:
        """An environment built like the training one, with observation statistics frozen."""
        return make_eval_env(self.env, env_id or self.env_id, self.config, num_envs=num_envs, seed=seed)

