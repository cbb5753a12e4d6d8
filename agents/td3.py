"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic
Methods"), and DDPG (Lillicrap et al. 2016) as its special case.

A deterministic actor mu(s) in [-1, 1] with Gaussian (or Ornstein-Uhlenbeck) exploration noise,
trained off-policy against critics and their Polyak-averaged targets. TD3's three changes to DDPG:
    clipped double Q:          y = r + gamma^m (1 - done) min_i Q'_i(s', a')
    target policy smoothing:   a' = clip(mu'(s') + clip(N(0, target_policy_noise), -c, c), -1, 1)
    delayed policy updates:    the actor and every target move once per `policy_delay` critic steps
Critics: sum_i (Q_i(s, a) - y)^2 (mean over the batch); actor: -Q_1(s, mu(s)).
`rl train ddpg` is the same file with one critic, no delay and no smoothing (`DDPG` below).

Actions live in [-1, 1] inside the agent (buffer, networks, noise) and are rescaled onto the Box's
bounds only when sent to the environment, as in SB3, so the zoo's noise levels transfer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import Agent, AgentConfig, check_bounded_actions, check_learning_starts, obs_to_tensor
from envs.core import VecEnv
from rlcore.buffers import ReplayBatch, ReplayBuffer, split_batch
from rlcore.callbacks import Callback
from rlcore.config import check
from rlcore.distributions import scale_action
from rlcore.nets import Critics, mlp, optimizer_step, polyak_update
from rlcore.run import TrainingRun

NOISE_TYPES = ("normal", "ornstein-uhlenbeck", "none")


@dataclass
class TD3Config(AgentConfig):
    num_envs: int = 1
    learning_rate: float = 1e-3
    """Adam step size of the actor and the critics (annealed linearly to 0 when anneal_lr)."""
    hidden_sizes: tuple[int, ...] = (400, 300)
    max_grad_norm: float | None = None
    """Global gradient-norm clip of each network (None: no clipping, as in the paper and SB3)."""
    log_interval: int = 1_000
    checkpoint_interval: int = 10_000
    buffer_size: int = 1_000_000
    """Replay capacity in transitions (all environment copies together)."""
    learning_starts: int = 100
    """Environment steps of uniformly random actions before the first update."""
    batch_size: int = 256
    """Transitions per gradient step."""
    train_freq: int = 1
    """Update every this many vector-environment steps."""
    gradient_steps: int = 1
    """Critic gradient steps per update."""
    tau: float = 0.005
    """Polyak rate of the target networks, in (0, 1] (1: a hard copy)."""
    n_critics: int = 2
    """Critics whose minimum makes the target (2: clipped double Q; 1: DDPG)."""
    policy_delay: int = 2
    """Critic steps per actor step (and per target update)."""
    target_policy_noise: float = 0.2
    """Std of the Gaussian noise on the target action (0: no smoothing)."""
    target_noise_clip: float = 0.5
    """The target noise is clipped to +-this."""
    action_noise: str = "normal"
    """Exploration noise on the actor's action: normal, ornstein-uhlenbeck (temporally correlated) or none."""
    action_noise_std: float = 0.1
    """Std of the exploration noise, in units of half the action range."""
    n_step: int = 1
    """Steps in the bootstrapped return."""
    save_replay_buffer: bool = False
    """Put the replay buffer in training checkpoints, so a resumed run continues exactly."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps", "n_step", "n_critics",
                     "policy_delay"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "learning_starts", self.learning_starts >= 0, ">= 0")
        check(self, "tau", 0 < self.tau <= 1, "in (0, 1]")
        check(self, "batch_size", self.batch_size <= self.buffer_size, f"<= buffer_size ({self.buffer_size})")
        for name in ("target_policy_noise", "target_noise_clip", "action_noise_std"):
            check(self, name, getattr(self, name) >= 0, ">= 0")
        check(self, "action_noise", self.action_noise in NOISE_TYPES, f"one of {', '.join(NOISE_TYPES)}")


class Actor(nn.Module):
    """MLP, then tanh: a deterministic action in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs.flatten(1).float()))


class ExplorationNoise(nn.Module):
    """Per environment copy: independent Gaussian noise, or an Ornstein-Uhlenbeck process (theta 0.15,
    dt 0.01, as SB3's) restarted where an episode ended. Its state is saved with the agent."""

    theta, dt = 0.15, 1e-2

    def __init__(self, kind: str, std: float, num_envs: int, action_dim: int, device: torch.device):
        super().__init__()
        self.kind, self.std = kind, std
        self.register_buffer("state", torch.zeros(num_envs, action_dim, device=device))

    def forward(self) -> torch.Tensor:
        if self.kind == "normal":
            return self.std * torch.randn_like(self.state)
        if self.kind == "ornstein-uhlenbeck":
            self.state += -self.theta * self.state * self.dt + self.std * math.sqrt(self.dt) * torch.randn_like(self.state)
            return self.state
        return torch.zeros_like(self.state)

    def restart(self, done: torch.Tensor) -> None:
        self.state.mul_((~done).unsqueeze(1))


class TD3(Agent):
    """`TD3(env, **hyperparameters)`; `env` is an environment id or a VecEnv with a bounded Box action space."""

    algo = "td3"
    config_class = TD3Config
    action_spaces = (gym.spaces.Box,)
    checkpoint_state = ("actor", "actor_target", "critic", "critic_target", "actor_optimizer", "critic_optimizer",
                        "noise", "nan_guard")
    counters = ("global_step", "iteration", "num_updates", "total_steps")

    def __init__(self, env: str | VecEnv, **hyperparameters: Any):
        super().__init__(env, hyperparameters)
        cfg = self.config
        space = self.env.single_action_space
        check_bounded_actions(self.algo, space)
        obs_dim = math.prod(self.env.single_observation_space.shape)
        self.action_shape = tuple(space.shape)
        action_dim = math.prod(self.action_shape)

        self.actor = Actor(obs_dim, action_dim, cfg.hidden_sizes).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = Critics(obs_dim, action_dim, cfg.hidden_sizes, cfg.n_critics).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # fused: one kernel for each whole parameter list instead of several small ops per tensor.
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.learning_rate, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.learning_rate, fused=True)
        self.noise = ExplorationNoise(cfg.action_noise, cfg.action_noise_std, self.env.num_envs, action_dim, self.device)

        self.buffer: ReplayBuffer | None = None  # built when training starts: evaluation needs none
        self.iteration = 0  # vector-environment steps
        self._actor_loss = torch.zeros((), device=self.device)  # the last actor step's, for logging between them

    def _make_buffer(self) -> ReplayBuffer:
        cfg = self.config
        return ReplayBuffer(cfg.buffer_size, self.env.num_envs, tuple(self.env.single_observation_space.shape),
                            torch.float32, self.action_shape, torch.float32, self.device, n_step=cfg.n_step,
                            gamma=cfg.gamma)

    # ----- acting -------------------------------------------------------------------------
    @torch.no_grad()
    def _act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """An action in [-1, 1]: the actor's, plus exploration noise when exploring."""
        action = self.actor(obs)
        if explore:
            action = (action + self.noise()).clamp(-1.0, 1.0)
        return action.view(-1, *self.action_shape)

    def predict(self, obs: torch.Tensor | np.ndarray, deterministic: bool = True) -> torch.Tensor | np.ndarray:
        """Actions on the environment's scale for a batch of observations (or one): the actor's own when
        deterministic, else with Gaussian noise of `action_noise_std`. numpy in, numpy out."""
        obs_t, unbatched, was_numpy = obs_to_tensor(obs, self.env.single_observation_space, self.device)
        with torch.no_grad():
            action = self.actor(obs_t)
            if not deterministic:
                action = (action + self.config.action_noise_std * torch.randn_like(action)).clamp(-1.0, 1.0)
        action = scale_action(action.view(-1, *self.action_shape), self.env.single_action_space)
        action = action[0] if unbatched else action
        return action.cpu().numpy() if was_numpy else action

    # ----- learning -----------------------------------------------------------------------
    def target_actions(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The target actor's action with clipped Gaussian noise (target policy smoothing)."""
        cfg = self.config
        action = self.actor_target(next_obs)
        if cfg.target_policy_noise > 0:
            noise = (cfg.target_policy_noise * torch.randn_like(action)).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            action = (action + noise).clamp(-1.0, 1.0)
        return action

    def _critic_losses(self, batch: ReplayBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Each critic's mean squared error against the clipped double-Q target, ``[n_critics]``, and its values."""
        with torch.no_grad():
            next_q = self.critic_target(batch.next_obs, self.target_actions(batch.next_obs)).min(dim=0).values
            # discounts is gamma**m, and 0 where the episode terminated: a truncation still bootstraps.
            target = batch.rewards + batch.discounts * next_q
        q = self.critic(batch.obs, batch.actions.flatten(1))
        return F.mse_loss(q, target.expand_as(q), reduction="none").mean(dim=1), q.detach()

    def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        cfg = self.config
        qf_losses, q = self._critic_losses(batch)
        critic_loss = qf_losses.sum()
        optimizer_step(self.critic_optimizer, critic_loss, self.critic, cfg.max_grad_norm)
        self.num_updates += 1

        if self.num_updates % cfg.policy_delay == 0:
            # The first critic scores the actor (the paper's choice); only its input gradient is needed.
            self.critic.requires_grad_(False)
            actor_loss = -self.critic(batch.obs, self.actor(batch.obs))[0].mean()
            optimizer_step(self.actor_optimizer, actor_loss, self.actor, cfg.max_grad_norm)
            self.critic.requires_grad_(True)
            polyak_update(self.critic_target, self.critic, cfg.tau)
            polyak_update(self.actor_target, self.actor, cfg.tau)
            self._actor_loss = actor_loss.detach()
        self.nan_guard.record(critic_loss + self._actor_loss, self.global_step)
        return {**{f"losses/qf{i + 1}": loss for i, loss in enumerate(qf_losses.detach())},
                "losses/critic": critic_loss.detach(), "losses/actor": self._actor_loss, "losses/q_values": q.mean()}

    def _train(self) -> dict[str, torch.Tensor]:
        """`gradient_steps` updates; their batches are drawn at once (the buffer does not change during them)."""
        cfg = self.config
        for optimizer in (self.actor_optimizer, self.critic_optimizer):
            self.anneal_learning_rate(optimizer)
        stats: dict[str, torch.Tensor] = {}
        for batch in split_batch(self.buffer.sample(cfg.batch_size * cfg.gradient_steps), cfg.batch_size):
            stats = self._update(batch)
        return stats

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None,
              callbacks: Sequence[Callback] = ()) -> "TD3":
        """Train until `total_steps` environment steps of this run (a resumed agent continues up to it).

        Writes TensorBoard events, checkpoints and `summary.json` to `run_dir` (default
        `runs/<env>__td3__<seed>__<time>`). With `eval_every`, evaluates deterministically over
        `eval_episodes` episodes every so many steps (keeping `best_model.pt`), and stops early once the
        mean reaches `stop_at_return`.
        """
        cfg = self.config
        check_learning_starts(self.algo, cfg.learning_starts, total_steps)
        run = TrainingRun(self, total_steps, self.hparams(total_steps), ("act", "env", "learn"), run_dir=run_dir,
                          progress=progress, eval_every=eval_every, eval_episodes=eval_episodes,
                          stop_at_return=stop_at_return, include_buffer=cfg.save_replay_buffer,
                          callbacks=callbacks)
        n, space = self.env.num_envs, self.env.single_action_space
        stats: dict[str, torch.Tensor] = {}
        with run.start():
            self.prepare_run(run)
            if self.buffer is None:
                self.buffer = self._make_buffer()
            while self.global_step < total_steps and not run.stopped:
                with run.timing.phase("act"):
                    if self.global_step < cfg.learning_starts:  # uniform exploration fills the buffer first
                        action = torch.rand(n, *self.action_shape, device=self.device) * 2 - 1
                    else:
                        action = self._act(self.obs, explore=True)
                with run.timing.phase("env"):
                    next_obs, reward, terminated, truncated, info = self.env.step(scale_action(action, space))
                    self.nan_guard.record_env(next_obs, reward, self.global_step + n)
                    self.nan_guard.record_env(info["final_obs"], reward, self.global_step + n)  # where episodes ended
                with run.timing.phase("learn"):
                    self.buffer.add(self.obs, action, reward, info["final_obs"], terminated, truncated)
                    self.noise.restart(terminated | truncated)
                    self.obs = next_obs
                    self.global_step += n
                    self.iteration += 1
                    if self.global_step > cfg.learning_starts and self.iteration % cfg.train_freq == 0:
                        stats = self._train()
                run.log({**stats, "charts/learning_rate": self.actor_optimizer.param_groups[0]["lr"]})
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


@dataclass
class DDPGConfig(TD3Config):
    n_critics: int = 1
    """Critics whose minimum makes the target (DDPG: one)."""
    policy_delay: int = 1
    """Critic steps per actor step (DDPG: every step)."""
    target_policy_noise: float = 0.0
    """Std of the Gaussian noise on the target action (DDPG: none)."""


class DDPG(TD3):
    """DDPG: TD3 with one critic, no policy delay and no target smoothing (SB3's DDPG is the same)."""

    algo = "ddpg"
    config_class = DDPGConfig
