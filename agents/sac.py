"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

Off-policy maximum-entropy actor-critic for Box actions: twin critics and their Polyak-averaged
targets, a tanh-squashed Gaussian actor, and the entropy coefficient alpha tuned toward a target
entropy (-dim(A) by default). One gradient step per environment step by default.

Per update, on a replay batch (s, a, r, s'):
    a' ~ pi(s'),  y = r + gamma^m (1 - done) [min_i Q'_i(s', a') - alpha log pi(a'|s')]
    critics:  0.5 * sum_i (Q_i(s, a) - y)^2
    actor:    alpha log pi(a~|s) - min_i Q_i(s, a~),  a~ ~ pi(s) (reparameterised)
    alpha:    -log(alpha) * (log pi(a~|s) + target_entropy)
Targets: Q' <- (1 - tau) Q' + tau Q every `target_update_interval` gradient steps.

Actions live in [-1, 1] inside the agent (buffer, networks) and are rescaled onto the Box's bounds
only when sent to the environment. Departures from the paper are SB3's, so the zoo's
hyperparameters transfer: alpha is taken before its own step in each update; the actor is scored by
the critics after their step.
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
from rlcore.config import ConfigError, check
from rlcore.distributions import TanhDiagGaussian, scale_action
from rlcore.nets import Critics, mlp, optimizer_step, polyak_update
from rlcore.run import TrainingRun

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the actor's log std is clamped here (as in the paper's code and SB3)


@dataclass
class SACConfig(AgentConfig):
    num_envs: int = 1
    learning_rate: float = 3e-4
    """Adam step size of the actor, the critics and alpha (annealed linearly to 0 when anneal_lr)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
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
    """Gradient steps per update."""
    tau: float = 0.005
    """Polyak rate of the target critics, in (0, 1] (1: a hard copy)."""
    target_update_interval: int = 1
    """Gradient steps between target-critic updates."""
    ent_coef: str = "auto"
    """Entropy coefficient alpha: a number (fixed), 'auto' (tuned, starting at 1) or 'auto_<start>' (tuned from <start>)."""
    target_entropy: str = "auto"
    """Entropy that tuning steers toward: 'auto' (-dim(A)) or a number such as -2.5."""
    n_critics: int = 2
    """Critics whose minimum makes the target (2: the twin critics of the paper)."""
    n_step: int = 1
    """Steps in the bootstrapped return."""
    save_replay_buffer: bool = False
    """Put the replay buffer in training checkpoints, so a resumed run continues exactly."""

    def __post_init__(self) -> None:
        self.ent_coef, self.target_entropy = str(self.ent_coef), str(self.target_entropy)
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps", "target_update_interval",
                     "n_step", "n_critics"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "learning_starts", self.learning_starts >= 0, ">= 0")
        check(self, "tau", 0 < self.tau <= 1, "in (0, 1]")
        check(self, "batch_size", self.batch_size <= self.buffer_size, f"<= buffer_size ({self.buffer_size})")
        entropy_coefficient(self.ent_coef)
        target_entropy(self.target_entropy, 1)


def entropy_coefficient(text: str) -> tuple[bool, float]:
    """(whether alpha is tuned, its starting value) from 'auto', 'auto_<start>' or a number."""
    tuned = text == "auto" or text.startswith("auto_")
    try:
        value = 1.0 if text == "auto" else float(text[5:] if tuned else text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"SACConfig.ent_coef = {text!r} is invalid: give a positive number (fixed alpha), 'auto' "
                          "(tuned from 1) or 'auto_<start>' such as 'auto_0.1' (tuned from 0.1).")
    return tuned, value


def target_entropy(text: str, action_dim: int) -> float:
    """The entropy alpha is tuned toward: 'auto' is -dim(A) (the paper's heuristic), else the number given."""
    if text == "auto":
        return -float(action_dim)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"SACConfig.target_entropy = {text!r} is invalid: give 'auto' (-dim(A)) or a number such "
                          "as -2.5 (a negative target is written as a number, not 'auto-').")
    return value


class Actor(nn.Module):
    """MLP torso, then the mean and (clamped) log std of a tanh-squashed Gaussian from one layer."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.torso = mlp(obs_dim, hidden)
        self.head = nn.Linear(hidden[-1] if hidden else obs_dim, 2 * action_dim)

    def forward(self, obs: torch.Tensor) -> TanhDiagGaussian:
        mean, log_std = self.head(self.torso(obs.flatten(1).float())).chunk(2, dim=-1)
        return TanhDiagGaussian(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX))


class EntropyCoefficient(nn.Module):
    """log(alpha) as a parameter (so alpha stays positive), trained only when tuned."""

    def __init__(self, start: float, tuned: bool):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(start)), requires_grad=tuned)

    def forward(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()


class SAC(Agent):
    """`SAC(env, **hyperparameters)`; `env` is an environment id or a VecEnv with a bounded Box action space."""

    algo = "sac"
    config_class = SACConfig
    action_spaces = (gym.spaces.Box,)
    checkpoint_state = ("actor", "critic", "critic_target", "alpha", "actor_optimizer", "critic_optimizer",
                        "alpha_optimizer", "nan_guard")
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
        self.critic = Critics(obs_dim, action_dim, cfg.hidden_sizes, cfg.n_critics).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        tuned, start = entropy_coefficient(cfg.ent_coef)
        self.alpha = EntropyCoefficient(start, tuned).to(self.device)
        self.target_entropy = target_entropy(cfg.target_entropy, action_dim)
        # fused: one kernel for each whole parameter list instead of several small ops per tensor.
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.learning_rate, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.learning_rate, fused=True)
        self.alpha_optimizer = torch.optim.Adam(self.alpha.parameters(), lr=cfg.learning_rate)

        self.buffer: ReplayBuffer | None = None  # built when training starts: evaluation needs none
        self.iteration = 0  # vector-environment steps

    def _make_buffer(self) -> ReplayBuffer:
        cfg = self.config
        return ReplayBuffer(cfg.buffer_size, self.env.num_envs, tuple(self.env.single_observation_space.shape),
                            torch.float32, self.action_shape, torch.float32, self.device, n_step=cfg.n_step,
                            gamma=cfg.gamma)

    # ----- acting -------------------------------------------------------------------------
    @torch.no_grad()
    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """An action in [-1, 1]: the squashed mean when deterministic, else a sample."""
        dist = self.actor(obs)
        return (dist.mode() if deterministic else dist.sample()).view(-1, *self.action_shape)

    def predict(self, obs: torch.Tensor | np.ndarray, deterministic: bool = True) -> torch.Tensor | np.ndarray:
        """Actions on the environment's scale for a batch of observations (or one). numpy in, numpy out."""
        obs_t, unbatched, was_numpy = obs_to_tensor(obs, self.env.single_observation_space, self.device)
        action = scale_action(self._act(obs_t, deterministic), self.env.single_action_space)
        action = action[0] if unbatched else action
        return action.cpu().numpy() if was_numpy else action

    # ----- learning -----------------------------------------------------------------------
    def _critic_losses(self, batch: ReplayBatch, alpha: torch.Tensor, next_actions: torch.Tensor,
                       next_log_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each critic's mean squared error against the soft target, ``[n_critics]``, and its values ``[n_critics, B]``."""
        with torch.no_grad():
            next_q = self.critic_target(batch.next_obs, next_actions).min(dim=0).values - alpha * next_log_prob
            # discounts is gamma**m, and 0 where the episode terminated: a truncation still bootstraps.
            target = batch.rewards + batch.discounts * next_q
        q = self.critic(batch.obs, batch.actions.flatten(1))
        return F.mse_loss(q, target.expand_as(q), reduction="none").mean(dim=1), q.detach()

    def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        cfg = self.config
        actions, log_prob = self.actor(batch.obs).rsample_with_log_prob()
        actions = actions.flatten(1)
        with torch.no_grad():
            next_actions, next_log_prob = self.actor(batch.next_obs).rsample_with_log_prob()
        alpha = self.alpha()  # this update's alpha, taken before its own step
        stats = {}
        if self.alpha.log_alpha.requires_grad:
            alpha_loss = -(self.alpha.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            optimizer_step(self.alpha_optimizer, alpha_loss, self.alpha, cfg.max_grad_norm)
            stats["losses/alpha"] = alpha_loss.detach()

        qf_losses, q = self._critic_losses(batch, alpha, next_actions.flatten(1), next_log_prob)
        critic_loss = 0.5 * qf_losses.sum()
        optimizer_step(self.critic_optimizer, critic_loss, self.critic, cfg.max_grad_norm)

        # The actor's gradient flows through the critics to the actions only: their weights' gradients
        # would be discarded, so they are not computed (a third of this backward pass).
        self.critic.requires_grad_(False)
        actor_loss = (alpha * log_prob - self.critic(batch.obs, actions).min(dim=0).values).mean()
        optimizer_step(self.actor_optimizer, actor_loss, self.actor, cfg.max_grad_norm)
        self.critic.requires_grad_(True)

        self.num_updates += 1
        if self.num_updates % cfg.target_update_interval == 0:
            polyak_update(self.critic_target, self.critic, cfg.tau)
        self.nan_guard.record(critic_loss + actor_loss, self.global_step)
        stats.update({f"losses/qf{i + 1}": loss for i, loss in enumerate(qf_losses.detach())})
        stats.update({"losses/critic": critic_loss.detach(), "losses/actor": actor_loss.detach(),
                      "losses/q_values": q.mean(), "charts/entropy": -log_prob.detach().mean()})
        return stats

    def _train(self) -> dict[str, torch.Tensor]:
        """`gradient_steps` updates; their batches are drawn at once (the buffer does not change during them)."""
        cfg = self.config
        for optimizer in (self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer):
            self.anneal_learning_rate(optimizer)
        stats: dict[str, torch.Tensor] = {}
        for batch in split_batch(self.buffer.sample(cfg.batch_size * cfg.gradient_steps), cfg.batch_size):
            stats = self._update(batch)
        return stats

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None,
              callbacks: Sequence[Callback] = ()) -> "SAC":
        """Train until `total_steps` environment steps of this run (a resumed agent continues up to it).

        Writes TensorBoard events, checkpoints and `summary.json` to `run_dir` (default
        `runs/<env>__sac__<seed>__<time>`). With `eval_every`, evaluates deterministically over
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
                        action = self._act(self.obs, deterministic=False)
                with run.timing.phase("env"):
                    next_obs, reward, terminated, truncated, info = self.env.step(scale_action(action, space))
                    self.nan_guard.record_env(next_obs, reward, self.global_step + n)
                    self.nan_guard.record_env(info["final_obs"], reward, self.global_step + n)  # where episodes ended
                with run.timing.phase("learn"):
                    self.buffer.add(self.obs, action, reward, info["final_obs"], terminated, truncated)
                    self.obs = next_obs
                    self.global_step += n
                    self.iteration += 1
                    if self.global_step > cfg.learning_starts and self.iteration % cfg.train_freq == 0:
                        stats = self._train()
                run.log({**stats, "charts/alpha": self.alpha(),
                         "charts/learning_rate": self.actor_optimizer.param_groups[0]["lr"]})
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
