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
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import Agent, AgentConfig, obs_to_tensor
from envs.core import VecEnv
from rlcore.buffers import PrioritizedReplayBuffer, ReplayBatch, ReplayBuffer, split_batch
from rlcore.callbacks import Callback
from rlcore.config import check
from rlcore.nets import hard_update, is_image_space, make_torso, optimizer_step, polyak_update
from rlcore.run import TrainingRun
from rlcore.schedules import linear_schedule


@dataclass
class DQNConfig(AgentConfig):
    num_envs: int = 1
    learning_rate: float = 1e-4
    """Adam step size (annealed linearly to 0 when anneal_lr)."""
    anneal_lr: bool = False
    """Decay the step size linearly to 0 over the run, so the final Q-function settles instead of chasing its targets."""
    max_grad_norm: float = 10.0
    log_interval: int = 1_000
    """Environment steps between TensorBoard writes."""
    checkpoint_interval: int = 10_000
    buffer_size: int = 100_000
    """Replay capacity in transitions (all environment copies together)."""
    learning_starts: int = 1_000
    """Environment steps of random-ish play before the first update."""
    batch_size: int = 64
    """Transitions per gradient step."""
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
    optimize_memory_usage: bool = False
    """Store each observation once (next observations are read from the following slot)."""
    save_replay_buffer: bool = True
    """Put the replay buffer in training checkpoints, so a resumed run continues exactly."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps", "target_update_interval", "n_step"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "learning_starts", self.learning_starts >= 0, ">= 0")
        check(self, "tau", 0 < self.tau <= 1, "in (0, 1]")
        check(self, "exploration_fraction", 0 <= self.exploration_fraction <= 1, "in [0, 1]")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            check(self, name, 0 <= getattr(self, name) <= 1, "in [0, 1]")
        check(self, "per_alpha", self.per_alpha >= 0, ">= 0")
        check(self, "per_beta", 0 <= self.per_beta <= 1, "in [0, 1]")
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


class DQN(Agent):
    """`DQN(env, **hyperparameters)`; `env` is an environment id or a VecEnv with a Discrete action space."""

    algo = "dqn"
    config_class = DQNConfig
    action_spaces = (gym.spaces.Discrete,)
    checkpoint_state = ("q", "q_target", "optimizer", "nan_guard")
    counters = ("global_step", "iteration", "num_updates", "total_steps")

    def __init__(self, env: str | VecEnv, **hyperparameters: Any):
        super().__init__(env, hyperparameters)
        cfg = self.config
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

        self.iteration = 0  # vector-environment steps

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
    def _loss(self, batch: ReplayBatch, next_q_target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Huber TD loss on `batch`; `next_q_target` is the target network's Q(next_obs) for it."""
        cfg = self.config
        with torch.no_grad():
            if cfg.double:
                next_actions = self.q(batch.next_obs).argmax(dim=1, keepdim=True)
                next_value = next_q_target.gather(1, next_actions).squeeze(1)
            else:
                next_value = next_q_target.max(dim=1).values
            # discounts is gamma**m, and 0 where the episode terminated: a time-limit truncation
            # still bootstraps from the true final observation.
            target = batch.rewards + batch.discounts * next_value
        q_taken = self.q(batch.obs).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
        loss = (batch.weights * F.smooth_l1_loss(q_taken, target, reduction="none")).mean()
        if cfg.prioritized:
            self.buffer.update_priorities(batch.indices, (q_taken - target).detach().abs())
        return loss, {"losses/td_loss": loss.detach(), "losses/q_values": q_taken.detach().mean()}

    def _update(self, batch: ReplayBatch, next_q_target: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, stats = self._loss(batch, next_q_target)
        optimizer_step(self.optimizer, loss, self.q, self.config.max_grad_norm)
        self.num_updates += 1
        self.nan_guard.record(loss, self.global_step)
        return stats

    def _train(self) -> dict[str, torch.Tensor]:
        """`gradient_steps` updates in a row.

        The replay buffer and the target network stay fixed during them, so with uniform replay
        all their batches are drawn at once and the target network scores all their next
        observations in one pass: the same updates in fewer, larger operations (most of a small
        network's update time is per-operation overhead). Prioritised replay changes the
        sampling distribution after every step, so it samples one batch at a time.
        """
        cfg = self.config
        self.anneal_learning_rate(self.optimizer)
        if cfg.prioritized:
            for _ in range(cfg.gradient_steps):
                batch = self.buffer.sample(cfg.batch_size)
                with torch.no_grad():
                    next_q_target = self.q_target(batch.next_obs)
                stats = self._update(batch, next_q_target)
            return stats
        burst = self.buffer.sample(cfg.batch_size * cfg.gradient_steps)
        with torch.no_grad():
            next_q_target = self.q_target(burst.next_obs)
        for batch, next_q in zip(split_batch(burst, cfg.batch_size), next_q_target.split(cfg.batch_size)):
            stats = self._update(batch, next_q)
        return stats

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None,
              callbacks: Sequence[Callback] = ()) -> "DQN":
        """Train until `total_steps` environment steps of this run (a resumed agent continues up to it).

        Writes TensorBoard events, checkpoints and `summary.json` to `run_dir` (default
        `runs/<env>__dqn__<seed>__<time>`). With `eval_every`, evaluates deterministically over
        `eval_episodes` episodes every so many steps, and stops early once the mean reaches `stop_at_return`.
        """
        cfg = self.config
        run = TrainingRun(self, total_steps, self.hparams(total_steps), ("act", "env", "learn"), run_dir=run_dir,
                          progress=progress, eval_every=eval_every, eval_episodes=eval_episodes,
                          stop_at_return=stop_at_return, include_buffer=cfg.save_replay_buffer,
                          callbacks=callbacks)
        n = self.env.num_envs
        target_every = max(cfg.target_update_interval // n, 1)
        stats: dict[str, torch.Tensor] = {}
        with run.start():
            self.prepare_run(run)
            if self.buffer is None:
                self.buffer = self._make_buffer()
            while self.global_step < total_steps and not run.stopped:
                epsilon = self.epsilon()
                with run.timing.phase("act"):
                    action = self._act(self.obs, epsilon)
                with run.timing.phase("env"):
                    next_obs, reward, terminated, truncated, info = self.env.step(action)
                    self.nan_guard.record_env(next_obs, reward, self.global_step + n)
                    self.nan_guard.record_env(info["final_obs"], reward, self.global_step + n)  # where episodes ended
                with run.timing.phase("learn"):
                    self.buffer.add(self.obs, action, reward, info["final_obs"], terminated, truncated)
                    self.obs = next_obs
                    self.global_step += n
                    self.iteration += 1
                    if self.global_step >= cfg.learning_starts and self.iteration % cfg.train_freq == 0:
                        if cfg.prioritized:
                            self.buffer.beta = linear_schedule(cfg.per_beta, 1.0, 1.0, self.global_step / total_steps)
                        stats = self._train()
                    if self.global_step >= cfg.learning_starts and self.iteration % target_every == 0:
                        if cfg.tau >= 1.0:
                            hard_update(self.q_target, self.q)
                        else:
                            polyak_update(self.q_target, self.q, cfg.tau)
                run.log({**stats, "charts/epsilon": epsilon, "charts/learning_rate": self.optimizer.param_groups[0]["lr"]})
                run.evaluate()
                run.checkpoint()
            self.summary = run.finish()
        return self

    # ----- saving and loading (the rest is in agents.base.Agent) ------------------------
    def replay_state(self) -> dict[str, Any] | None:
        return self.buffer.state_dict() if self.buffer is not None else None

    def load_replay_state(self, state: dict[str, Any]) -> None:
        self.buffer = self._make_buffer()
        self.buffer.load_state_dict(state)
