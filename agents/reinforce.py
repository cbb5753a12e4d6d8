"""REINFORCE with a learned baseline.

Williams 1992, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning": the policy gradient weighted by the Monte-Carlo return-to-go G_t,
minus a learned state-value baseline V(s_t) that cuts variance without bias (Sutton & Barto
2018, section 13.4). The baseline is fitted by regression to G_t.

Departure from the textbook, for batched collection: returns run over fixed rollouts of
n_steps per copy, not whole episodes. Where a rollout cuts an episode, or a time limit
truncates it, G_t is bootstrapped from V of the true final observation (lambda = 1 GAE
computes exactly this); terminations end the return. With n_steps at least the episode
length this is the plain Monte-Carlo estimator.

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
from rlcore.rollout import gae_advantages, make_rollout_buffer, normalize_advantages
from rlcore.run import TrainingRun


@dataclass
class REINFORCEConfig(OnPolicyConfig):
    learning_rate: float = 1e-3
    """Adam step size."""
    n_steps: int = 500
    """Steps per copy in each rollout (returns are bootstrapped only where a rollout cuts an episode)."""
    normalize_advantage: bool = True
    """Normalise G_t - V(s_t) over each rollout."""
    log_interval: int = 4_000
    """Environment steps between TensorBoard writes (checked after each update)."""


class REINFORCE(PolicyGradientAgent):
    """`REINFORCE(env, **hyperparameters)`; `env` is an environment id or a VecEnv (Discrete, Box or MultiDiscrete actions)."""

    algo = "reinforce"
    config_class = REINFORCEConfig

    def __init__(self, env: str | VecEnv, **hyperparameters: Any):
        super().__init__(env, hyperparameters)
        cfg = self.config
        self.policy = make_actor_critic(self.env, cfg)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate, fused=True)
        self.buffer = make_rollout_buffer(self.env, cfg.n_steps, self.device)
        self.compiled_act = compiled_act(self.policy, self.device) if cfg.compile else None

    # ----- learning -----------------------------------------------------------------------
    def _update(self) -> dict[str, torch.Tensor]:
        """One gradient step: the policy gradient with baseline, and the baseline's regression."""
        cfg, b = self.config, self.buffer
        self.anneal_learning_rate(self.optimizer)
        logprob, entropy, value = self.policy.evaluate_actions(b.obs.flatten(0, 1), b.actions.flatten(0, 1))
        returns = b.returns.view(-1)  # G_t: lambda = 1 advantages plus the baseline they subtracted
        advantages = returns - b.values.view(-1)
        if cfg.normalize_advantage:
            advantages = normalize_advantages(advantages)
        policy_loss = -(advantages * logprob).mean()
        value_loss = 0.5 * (returns - value).pow(2).mean()
        entropy_mean = entropy.mean()
        loss = policy_loss - cfg.ent_coef * entropy_mean + cfg.vf_coef * value_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.nan_guard.record(loss, self.global_step)
        self.num_updates += 1
        return {"losses/policy_loss": policy_loss.detach(), "losses/value_loss": value_loss.detach(),
                "losses/entropy": entropy_mean.detach(),
                "losses/explained_variance": 1 - (returns - b.values.view(-1)).var() / returns.var().clamp_min(1e-8)}

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None,
              callbacks: Sequence[Callback] = ()) -> "REINFORCE":
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
                    gae_advantages(self.buffer, self.policy, self.obs, cfg.gamma, 1.0)  # lambda = 1: G_t - V(s_t)
                with run.timing.phase("update"):
                    stats = self._update()
                run.log(stats)
                run.evaluate()
                run.checkpoint()
            self.summary = run.finish()
        return self
