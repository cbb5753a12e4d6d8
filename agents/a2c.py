"""Advantage Actor-Critic (A2C).

Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning", in its synchronous
form (OpenAI Baselines' A2C): N environment copies step together for n_steps, then one
gradient step on the whole rollout with n-step (GAE, lambda = 1 by default) advantages.
Defaults follow Stable-Baselines3's A2C (RMSprop, alpha 0.99, eps 1e-5) so zoo presets port.

The file reads top to bottom: config, the agent (loss, update, learn loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from agents.policy_gradient import OnPolicyConfig, PolicyGradientAgent, compiled_act, make_actor_critic
from envs.core import VecEnv
from rlcore.callbacks import Callback
from rlcore.config import check
from rlcore.rollout import gae_advantages, make_rollout_buffer, normalize_advantages
from rlcore.run import TrainingRun


@dataclass
class A2CConfig(OnPolicyConfig):
    learning_rate: float = 7e-4
    """Step size (RMSprop by default, annealed linearly to 0 when anneal_lr)."""
    n_steps: int = 5
    """Steps per copy before each update."""
    gae_lambda: float = 1.0
    """GAE lambda (1: plain n-step returns, as in the paper)."""
    use_rms_prop: bool = True
    """RMSprop (alpha 0.99, eps 1e-5, as the paper and SB3); False for Adam."""
    rms_prop_eps: float = 1e-5
    """RMSprop / Adam epsilon."""
    anneal_lr: bool = False
    """Anneal the learning rate linearly to 0 over training."""
    normalize_advantage: bool = False
    """Normalise advantages over each rollout."""
    log_interval: int = 2_000
    """Environment steps between TensorBoard writes (checked after each update)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]")


class A2C(PolicyGradientAgent):
    """`A2C(env, **hyperparameters)`; `env` is an environment id or a VecEnv (Discrete, Box or MultiDiscrete actions)."""

    algo = "a2c"
    config_class = A2CConfig

    def __init__(self, env: str | VecEnv, **hyperparameters: Any):
        super().__init__(env, hyperparameters)
        cfg = self.config
        self.policy = make_actor_critic(self.env, cfg)
        params = self.policy.parameters()
        self.optimizer = (torch.optim.RMSprop(params, lr=cfg.learning_rate, alpha=0.99, eps=cfg.rms_prop_eps)
                          if cfg.use_rms_prop else torch.optim.Adam(params, lr=cfg.learning_rate, eps=cfg.rms_prop_eps,
                                                                       fused=True))
        self.buffer = make_rollout_buffer(self.env, cfg.n_steps, self.device)
        self.compiled_act = compiled_act(self.policy, self.device) if cfg.compile else None

    # ----- learning -----------------------------------------------------------------------
    def _update(self) -> dict[str, torch.Tensor]:
        """One gradient step on the whole rollout."""
        cfg, b = self.config, self.buffer
        self.anneal_learning_rate(self.optimizer)
        logprob, entropy, value = self.policy.evaluate_actions(b.obs.flatten(0, 1), b.actions.flatten(0, 1))
        advantages = b.advantages.view(-1)
        if cfg.normalize_advantage:
            advantages = normalize_advantages(advantages)
        policy_loss = -(advantages * logprob).mean()
        value_loss = (b.returns.view(-1) - value).pow(2).mean()  # SB3's MSE, without the 1/2, so presets port
        entropy_mean = entropy.mean()
        loss = policy_loss - cfg.ent_coef * entropy_mean + cfg.vf_coef * value_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.nan_guard.record(loss, self.global_step)
        self.num_updates += 1
        returns, values = b.returns.view(-1), b.values.view(-1)
        return {"losses/policy_loss": policy_loss.detach(), "losses/value_loss": value_loss.detach(),
                "losses/entropy": entropy_mean.detach(),
                "losses/explained_variance": 1 - (returns - values).var() / returns.var().clamp_min(1e-8)}

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None,
              callbacks: Sequence[Callback] = ()) -> "A2C":
        """Train until `total_steps` environment steps of this run (a resumed agent continues up to it);
        the arguments are those of `PPO.learn`."""
        cfg = self.config
        run = TrainingRun(self, total_steps, self.hparams(total_steps), ("rollout", "update"), run_dir=run_dir,
                          progress=progress, eval_every=eval_every, eval_episodes=eval_episodes,
                          stop_at_return=stop_at_return, callbacks=callbacks)
        with run.start():
            self.prepare_run(run)
            while self.global_step < total_steps and not run.stopped:
                with run.timing.phase("rollout"):
                    self.collect_rollout()
                    gae_advantages(self.buffer, self.policy, self.obs, cfg.gamma, cfg.gae_lambda)
                with run.timing.phase("update"):
                    stats = self._update()
                run.log(stats)
                run.evaluate()
                run.checkpoint()
            self.summary = run.finish()
        return self
