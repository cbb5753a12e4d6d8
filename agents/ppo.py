"""Proximal Policy Optimization.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms", with the implementation
details of Huang et al. 2022, "The 37 Implementation Details of Proximal Policy
Optimization" (ICLR Blog Track); docs/ppo-implementation-details.md maps each detail to the code.

The file reads top to bottom: config, the agent, the clipped loss, the update epochs, the
learn loop (collect, advantages, update, log, checkpoint). To follow one update you need
this file, `rlcore/rollout.py` (the rollout loop, GAE, the buffer), `rlcore/policies.py`
(the actor-critic) and `rlcore/distributions.py`.

Three options change how the same algorithm runs, each behind one seam:
- several seeds at once (`seeds=`): the networks are stacked (`rlcore.ensemble`) and every
  per-sample tensor of the loss is reshaped once to ``[members, B]``; the loss is then one
  agent's, averaged over the last dimension;
- `async_rollout`: the next round is collected beside the update (`rlcore.async_rollout`);
- `cuda_graph`: each minibatch step is replayed from a CUDA graph (`rlcore.cuda_graph`).
On Text-v0 the policy is a language model; KL shaping and group advantages are in `agents.rlhf`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.policy_gradient import OnPolicyConfig, PolicyGradientAgent, acting_step, compiled_act, make_actor_critic
from agents.rlhf import apply_kl, make_lm_policy, round_statistics, samples_table, text_advantages
from envs.core import VecEnv
from rlcore.async_rollout import AsyncRollout, Round
from rlcore.callbacks import Callback
from rlcore.config import ConfigError, check
from rlcore.cuda_graph import GraphedStep
from rlcore.ensemble import clip_grad_norm_per_member, member_state_dict, stack_modules, unstack_tensor
from rlcore.kl import KLConfig, kl_estimate, make_kl_controller
from rlcore.lm import LMActorCritic
from rlcore.nets import has_hooks
from rlcore.rollout import (
    RolloutBatch,
    RolloutBuffer,
    collect,
    gae_advantages,
    make_rollout_buffer,
    masked_mean,
    normalize_advantages,
)
from rlcore.run import TrainingRun
from rlcore.seeding import rng_state, set_rng_state


@dataclass
class PPOConfig(OnPolicyConfig):
    learning_rate: float = 3e-4
    """Adam step size (annealed linearly to 0 when anneal_lr)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over training."""
    batch_size: int = 256
    """Transitions per minibatch; must divide num_envs * n_steps."""
    n_epochs: int = 4
    """Passes over each rollout."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """Clipping of the probability ratio (annealed linearly to 0 when anneal_clip_range)."""
    clip_range_vf: float | None = None
    """Clipping of the value update around the rollout's values; None disables it."""
    target_kl: float | None = None
    """Stop the epochs of an update once the approximate KL exceeds this; None disables it."""
    anneal_clip_range: bool = False
    """Anneal the clip range linearly to 0 over training."""
    normalize_advantage: bool = True
    """Normalise advantages per minibatch."""
    adam_eps: float = 1e-5
    """Adam epsilon (1e-5 as in the original PPO code, not PyTorch's 1e-8)."""
    advantage: str = "gae"
    """gae (GAE with the critic) or group (Text-v0, critic-free: return minus the mean of the prompt's other completions)."""
    async_rollout: bool = False
    """Collect the next rollout while the update learns from the last one (one update off-policy; the stored
    log-probabilities correct the ratio): on a CPU (Linux) the update runs in a forked learner process,
    elsewhere the rollout in a background thread; on a CPU each side gets half the torch threads. Costs a
    second copy of the policy. Pays off where acting is as costly as learning (Text-v0)."""
    cuda_graph: bool = True
    """On CUDA, capture each minibatch's update step (gather, loss, backward pass, gradient clipping) once as a
    CUDA graph and replay it: one launch instead of one per kernel (the same kernels, so the same numbers). False
    runs it eagerly. Not used for Text-v0, with async_rollout (the collector thread launches kernels meanwhile) or
    while the policy has module hooks (a replay would not run them)."""
    kl: KLConfig | None = None
    """The KL penalty against the reference model (Text-v0 only; its preset turns it on): kl_coef, kl_target, ..."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch_size", "n_epochs"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]")
        check(self, "clip_range", self.clip_range > 0, "> 0")
        check(self, "clip_range_vf", self.clip_range_vf is None or self.clip_range_vf > 0, "> 0 or None")
        check(self, "target_kl", self.target_kl is None or self.target_kl > 0, "> 0 or None")
        check(self, "advantage", self.advantage in ("gae", "group"), "gae or group")
        if self.async_rollout and self.compile:  # refused before an environment or a model is built
            raise ConfigError("compile = True is not supported with async_rollout = True: the compiled acting step "
                              "would run in the background thread. Turn one of them off.")
        rollout = self.num_envs * self.n_steps
        check(self, "batch_size", self.batch_size <= rollout,
              f"<= the rollout size num_envs * n_steps = {self.num_envs} * {self.n_steps} = {rollout}")
        check(self, "batch_size", rollout % self.batch_size == 0,
              f"a divisor of the rollout size num_envs * n_steps = {self.num_envs} * {self.n_steps} = {rollout}")


def check_seeds(seeds: Sequence[int], env: str | VecEnv, hyperparameters: dict[str, Any]) -> tuple[int, ...]:
    """The seeds of a several-seeds-at-once run, refused early when they cannot work."""
    seeds = tuple(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds = {seeds!r} is invalid: give a non-empty list of integers, e.g. range(16).")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds = {list(seeds)} repeats a seed: each seed trains its own agent.")
    if "seed" in hyperparameters and hyperparameters["seed"] != seeds[0]:
        raise ValueError(f"Give seed ({hyperparameters['seed']}) or seeds ({list(seeds)}), not both.")
    if not isinstance(env, str):
        raise ValueError("Several seeds at once need an environment id (each seed's saved agent rebuilds its "
                         "environment from it), not a VecEnv.")
    return seeds


class PPO(PolicyGradientAgent):
    """`PPO(env, **hyperparameters)`; `env` is an environment id or a VecEnv (Discrete, Box or MultiDiscrete actions).

    `PPO(env_id, seeds=range(16), ...)` trains one independent agent per seed in this process:
    `num_envs` copies each, their networks stacked (`rlcore.ensemble`) so all seeds take one
    pass. Each seed logs, evaluates and saves into its own run directory; `member(i)` is seed
    `seeds[i]` as a plain PPO agent.
    """

    algo = "ppo"
    config_class = PPOConfig
    trains_text = True

    def __init__(self, env: str | VecEnv, seeds: Sequence[int] | None = None, **hyperparameters: Any):
        if seeds is not None:
            seeds = check_seeds(seeds, env, hyperparameters)
            hyperparameters = {**hyperparameters, "seed": seeds[0]}
        self.members = len(seeds) if seeds else 1
        super().__init__(env, hyperparameters, members=self.members)
        self.seeds = seeds
        cfg = self.config
        self.text = self.env_config is not None  # Text-v0: a language model writes the episodes
        self._check_settings()
        self.policy = self._make_policy()
        self.kl_controller = make_kl_controller(cfg.kl) if cfg.kl is not None else None
        if self.kl_controller is not None:
            self.checkpoint_state = (*self.checkpoint_state, "kl_controller")
        # fused: one kernel for every parameter (docs/performance.md).
        params = [p for p in self.policy.parameters() if p.requires_grad]  # LoRA freezes the base model
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
        self.buffer = make_rollout_buffer(self.env, cfg.n_steps, self.device)
        self.compiled_act = compiled_act(self.policy, self.device) if cfg.compile else None
        self.rollout_stats: dict[str, Any] = {}  # the last round's reward, length and KL (Text-v0)
        self.samples: dict[str, list] | None = None  # the last round's prompts, completions and rewards (Text-v0)
        self.rollouts: AsyncRollout | None = None
        if cfg.async_rollout:
            collector = self.policy.collector_copy() if isinstance(self.policy, LMActorCritic) else copy.deepcopy(self.policy)
            self.rollouts = AsyncRollout(self.collect_round, self.policy, collector,
                                         make_rollout_buffer(self.env, cfg.n_steps, self.device), cfg.seed)
            self.checkpoint_state = (*self.checkpoint_state, "rollouts")
        # cuda_graph: the minibatch step replayed from a CUDA graph (captured per buffer, at its first use).
        self.cuda_graph = cfg.cuda_graph and self.device.type == "cuda" and not self.text and self.rollouts is None
        self._graphed: tuple[RolloutBuffer, GraphedStep] | None = None

    def _check_settings(self) -> None:
        cfg = self.config
        if not self.text:
            if cfg.kl is not None:
                raise ValueError("The kl_* settings (a KL penalty against a reference language model) apply to Text-v0 "
                                 "only: leave them out for other environments.")
            if cfg.advantage != "gae":
                raise ValueError("advantage = group (completions of one prompt as each other's baseline) applies to "
                                 "Text-v0 only: leave it at gae.")
            if self.members > 1:
                for name in ("target_kl", "normalize_obs", "normalize_reward"):
                    if getattr(cfg, name) not in (None, False):  # would couple the seeds' epochs or their inputs
                        raise ValueError(f"{name} = {getattr(cfg, name)} is not supported with several seeds at once: "
                                         "it would couple the seeds. Train them one at a time, or turn it off.")
            return
        text = self.env.unwrapped
        if self.members > 1:
            raise ValueError("Several seeds at once are not supported for Text-v0: train one seed per run.")
        if cfg.n_steps != text.max_new_tokens:
            raise ValueError(f"n_steps = {cfg.n_steps} must equal max_new_tokens = {text.max_new_tokens} for Text-v0: a "
                             "rollout is one round of generation. Set both (e.g. --n-steps 32 --max-new-tokens 32).")
        if cfg.batch_size % cfg.n_steps:
            raise ValueError(f"batch_size = {cfg.batch_size} must be a multiple of n_steps = {cfg.n_steps} for Text-v0: "
                             "minibatches hold whole episodes (batch_size / n_steps completions each).")
        if cfg.advantage == "group" and text.group_size < 2:
            raise ValueError(f"advantage = group needs group_size >= 2 completions per prompt, but the environment "
                             f"samples {text.group_size}: set group_size (e.g. --group-size 4).")
        if cfg.compile:
            raise ValueError("compile = True is not supported for Text-v0: the language model's KV cache changes "
                             "shape every step.")

    def _make_policy(self) -> nn.Module:
        cfg = self.config
        if self.text:
            return make_lm_policy(self.policy_config, self.env, cfg.device, critic_free=cfg.advantage == "group")
        if self.members == 1:
            return make_actor_critic(self.env, cfg)
        members = []
        for seed in self.seeds:
            torch.manual_seed(seed)  # each seed starts from the weights a run of its own would
            members.append(make_actor_critic(self.env, cfg))
        return stack_modules(members)

    def member(self, m: int) -> "PPO":
        """Seed `seeds[m]` of a several-seed agent as a plain PPO agent (its own environment, its
        weights, optimiser state and counters), e.g. to evaluate or save it; `self` with one seed."""
        if self.members == 1:
            return super().member(m)
        if self.rollouts is not None:
            self.rollouts.pull()
        saved = rng_state()  # building an agent reseeds the global RNGs; training must not notice
        try:
            agent = PPO(self.env_id, **{**self.settings(), "seed": self.seeds[m]})
            agent.policy.load_state_dict(member_state_dict(self.policy, m))
            names = [name for name, _ in self.policy.named_parameters()]
            state = self.optimizer.state_dict()
            state["state"] = {i: {k: unstack_tensor(self.policy, names[i], v, m) if v.dim() > 0 else v
                                  for k, v in slots.items()} for i, slots in state["state"].items()}
            agent.optimizer.load_state_dict(state)
            agent.nan_guard.load_state_dict(self.nan_guard.state_dict())
            for name in self.counters:
                setattr(agent, name, getattr(self, name))
        finally:
            set_rng_state(saved)
        return agent

    def save(self, path: str | Path, include_buffer: bool = False) -> Path:
        if self.members > 1:
            raise ValueError(f"This PPO trains {self.members} seeds at once: save each with agent.member(i).save(path).")
        if self.rollouts is not None:
            self.rollouts.pull()  # mid-run with async_rollout on a CPU, the optimiser's state is the learner's
        return super().save(path, include_buffer)

    @property
    def kl_coef(self) -> float | None:
        return self.kl_controller.coef if self.kl_controller is not None else None

    def _graphed_step(self, buffer: RolloutBuffer) -> GraphedStep:
        """The minibatch step on `buffer`, gathered by row indices, as a CUDA graph (`cuda_graph`)."""
        if self._graphed is None or self._graphed[0] is not buffer:
            self._graphed = (buffer, GraphedStep(lambda idx, clip: self._loss_and_gradients(buffer.batch(idx), clip, None),
                                                 self.policy.parameters()))
        return self._graphed[1]

    # ----- collecting -----------------------------------------------------------------------
    def collect_round(self, policy: nn.Module, buffer: RolloutBuffer, obs: torch.Tensor) -> Round:
        """A rollout of `policy` into `buffer` from `obs`, with its advantages. On Text-v0 a rollout is
        one round of generation: the KL penalty shapes it first, and nothing bootstraps."""
        cfg = self.config
        if not self.text:
            obs, _ = collect(self.env, policy, buffer, obs, acting_step(policy, self.compiled_act))
            gae_advantages(buffer, policy, obs, cfg.gamma, cfg.gae_lambda)
            return Round(obs, {}, None, None)
        if self.env.unwrapped.round_step != 0:
            raise RuntimeError("A text rollout must start at a round's first token; the environment is mid-round.")
        obs, texts = collect(self.env, policy, buffer, obs, bootstrap=False)
        stats, kl = round_statistics(buffer), None
        if cfg.kl is not None and not cfg.kl.skips_reference:
            coef = self.kl_controller.coef
            episode_kl = apply_kl(buffer, policy, cfg.kl, coef, episodes_per_pass=max(cfg.batch_size // cfg.n_steps, 1))
            stats.update({"charts/kl": episode_kl, "charts/kl_coef": coef})
            kl = float(episode_kl)  # one sync per round, for the controller
        group = self.env.unwrapped.group_size if cfg.advantage == "group" else None
        text_advantages(buffer, group, cfg.gamma, cfg.gae_lambda)
        return Round(obs, stats, texts, kl)

    def start_round(self, round: Round) -> None:
        """The round in `self.buffer` becomes the agent's: its steps (counted per seed), the observation
        to go on from, its statistics; the NaN guard sees its inputs and the KL controller its KL."""
        steps_per_copy = self.env.num_envs // self.members
        self.nan_guard.record_rollout(self.buffer.obs, self.buffer.rewards, self.global_step, steps_per_copy,
                                      self.buffer.final_values)
        self.global_step += self.config.n_steps * steps_per_copy
        if round.obs is not None:
            self.obs = round.obs
        if round.kl is not None:
            self.kl_controller.update(round.kl, self.env.num_envs)
        self.rollout_stats = round.stats
        if round.texts is not None:
            self.samples = round.texts

    # ----- learning -----------------------------------------------------------------------
    def _loss(self, batch: RolloutBatch, clip_range: float | torch.Tensor,
              kl_coef: float | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        logprob, entropy, value = self.policy.evaluate_actions(batch.obs, batch.actions)

        # The one place the seeds meet: rows are member-major, so [members, B] holds each seed's
        # minibatch in its own row (one row for a single agent, and for text episodes, whose [B, T]
        # tokens are one agent's). Below is one agent's loss on its row, averaged over the last
        # dimension; the rows' sum gives each seed's parameters exactly the gradient of its own loss.
        def rows(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.reshape(self.members, -1)

        logprob, entropy, value = rows(logprob), rows(entropy), rows(value)
        old_logprob, old_values, returns, advantages = (rows(x) for x in (batch.logprobs, batch.values,
                                                                              batch.returns, batch.advantages))
        mask, ref_logprobs = rows(batch.mask), rows(batch.ref_logprobs)  # text: real tokens; kl_penalty=loss

        def mean(x: torch.Tensor) -> torch.Tensor:  # over the real steps
            return x.mean(-1) if mask is None else masked_mean(x, mask, dim=-1)

        log_ratio = logprob - old_logprob
        ratio = log_ratio.exp()
        if cfg.normalize_advantage:
            advantages = normalize_advantages(advantages, mask=mask, dim=-1)
        # Clipped surrogate: the pessimistic (larger) of the two losses.
        policy_loss = mean(torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)))
        if cfg.clip_range_vf is None:
            value_loss = 0.5 * mean((value - returns).pow(2))
        else:
            clipped = old_values + (value - old_values).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
            value_loss = 0.5 * mean(torch.max((value - returns).pow(2), (clipped - returns).pow(2)))
        # With no entropy bonus the entropy is only logged: no backward pass through it.
        entropy_mean = mean(entropy if cfg.ent_coef else entropy.detach())
        loss = (policy_loss - cfg.ent_coef * entropy_mean + cfg.vf_coef * value_loss).sum()
        stats = {}
        if ref_logprobs is not None:  # kl_penalty=loss: KL to the reference, differentiated (GRPO)
            kl = mean(kl_estimate(logprob, ref_logprobs, cfg.kl.estimator))
            loss = loss + kl_coef * kl.sum()
            stats["losses/kl_loss"] = kl.detach()
        with torch.no_grad():
            # The low-variance KL estimator (ratio - 1) - log ratio (Schulman 2020; details #12).
            approx_kl = mean((ratio - 1) - log_ratio)
            clipfrac = mean(((ratio - 1).abs() > clip_range).float())
        return loss, {"losses/policy_loss": policy_loss.detach(), "losses/value_loss": value_loss.detach(),
                      "losses/entropy": entropy_mean.detach(), "losses/approx_kl": approx_kl,
                      "losses/clipfrac": clipfrac, **stats}

    def _loss_and_gradients(self, batch: RolloutBatch, clip_range: float | torch.Tensor,
                            kl_coef: float | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One minibatch's loss and statistics, and its clipped gradients in each parameter's `.grad`."""
        loss, stats = self._loss(batch, clip_range, kl_coef)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_per_member(self.policy.parameters(), self.config.max_grad_norm, self.members)
        return loss, stats

    def _update(self, buffer: RolloutBuffer, step: int, kl_coef: float | None) -> dict[str, torch.Tensor]:
        """`n_epochs` passes over the rollout in `buffer`, collected up to environment step `step`."""
        cfg = self.config
        self.anneal_learning_rate(self.optimizer, step)
        clip_range = cfg.clip_range * self.progress_left(step) if cfg.anneal_clip_range else cfg.clip_range
        num_minibatches = cfg.n_steps * (self.env.num_envs // self.members) // cfg.batch_size
        shuffle = self.rollouts.shuffle if self.rollouts is not None else None  # else the global RNG
        graphed = self._graphed_step(buffer) if self.cuda_graph and not has_hooks(self.policy) else None  # a replay runs no hooks
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for _ in range(cfg.n_epochs):
            if graphed is not None:
                clip = torch.full((), clip_range, device=self.device)
                steps = (graphed(idx, clip)
                         for idx in buffer.minibatch_indices(num_minibatches, shuffle, members=self.members))
            else:
                steps = (self._loss_and_gradients(batch, clip_range, kl_coef) for batch in
                         buffer.minibatches(num_minibatches, shuffle, members=self.members, sequences=self.text))
            for loss, stats in steps:
                self.optimizer.step()
                self.nan_guard.record(loss, step)
                sums = {k: sums.get(k, 0) + v for k, v in stats.items()}
                count += 1
            # Early stop on the last minibatch's KL: one sync per epoch, never per step.
            if cfg.target_kl is not None and float(stats["losses/approx_kl"]) > cfg.target_kl:
                break
        # Per seed: [T, members * N] -> [members, T * N].
        values, returns, valid = (x.view(cfg.n_steps, self.members, -1).transpose(0, 1).reshape(self.members, -1)
                                  for x in (buffer.values, buffer.returns, buffer.valid))
        weight = valid.float()

        def variance(x: torch.Tensor) -> torch.Tensor:  # over the real steps
            m = (x * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True)
            return ((x - m).square() * weight).sum(1) / (weight.sum(1) - 1).clamp_min(1)

        explained_var = 1 - variance(returns - values) / variance(returns).clamp_min(1e-8)
        return {**{k: v / count for k, v in sums.items()}, "losses/explained_variance": explained_var,
                "charts/learning_rate": self.optimizer.param_groups[0]["lr"], "charts/clip_range": clip_range}

    def export_pretrained(self, out_dir: str | Path, adapter_only: bool = False, overwrite: bool = False) -> Path:
        """A Text-v0 run's fine-tuned model as a Hugging Face directory (`agents.rlhf.export_pretrained`)."""
        if not self.text:
            raise ValueError(f"export_pretrained: this run trained on {self.env_id}, not a language model (Text-v0); "
                             "its model.pt is the whole export (PPO.load reads it).")
        from agents.rlhf import export_pretrained

        return export_pretrained(self.policy, self.policy_config, self.env_config, out_dir, adapter_only, overwrite)

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None,
              callbacks: Sequence[Callback] = ()) -> "PPO":
        """Train until `total_steps` environment steps of this run (a resumed agent continues up to it).

        Writes TensorBoard events, checkpoints and `summary.json` to `run_dir` (default
        `runs/<env>__ppo__<seed>__<time>`). With `eval_every`, evaluates deterministically every
        so many steps, and stops early once the mean over `eval_episodes` reaches `stop_at_return`.
        `callbacks` (`rlcore.callbacks.Callback`) are called at the start, after each evaluation (False
        stops the run) and at the end. With async_rollout, round k + 1 is collected (by the weights
        before update k) while update k runs.
        """
        if eval_every and self.text:
            raise ValueError("eval_every is not supported for Text-v0: the reward of every round's sampled completions "
                             "is logged as charts/reward_mean instead.")
        run = TrainingRun(self, total_steps, self.hparams(total_steps), ("rollout", "update"), run_dir=run_dir,
                          progress=progress, eval_every=eval_every, eval_episodes=eval_episodes,
                          stop_at_return=stop_at_return, callbacks=callbacks)
        rollouts = self.rollouts
        with run.start():
            self.prepare_run(run)
            if rollouts is not None and self.global_step < total_steps:
                rollouts.start(self._update, self.optimizer, self.buffer,
                               [*self.policy.parameters(), *self.policy.buffers(), self.nan_guard.first])
            try:
                while self.global_step < total_steps and not run.stopped:
                    with run.timing.phase("rollout"):
                        if rollouts is None:
                            round = self.collect_round(self.policy, self.buffer, self.obs)
                        else:  # collected beside the last update (the first one here, alone)
                            round, self.buffer = rollouts.take(self.obs, self.buffer)
                    self.start_round(round)
                    if rollouts is None:
                        with run.timing.phase("update"):
                            stats = self._update(self.buffer, self.global_step, self.kl_coef)
                    else:  # beside the next round (none after the last update)
                        next_obs = self.obs if self.global_step < total_steps else None
                        stats = rollouts.update(self._update, self.buffer, self.global_step, self.kl_coef, next_obs,
                                                run.timing)
                    self.num_updates += 1
                    texts = {"text/samples": samples_table(self.samples)} if self.samples else None
                    if run.log({**stats, **self.rollout_stats}, texts):
                        self.samples = None  # shown once
                    run.evaluate()
                    run.checkpoint()
            except BaseException:
                if rollouts is not None:
                    rollouts.stop(quiet=True)  # the error on its way is the one to report
                raise
            if rollouts is not None:
                rollouts.stop()
            self.summary = run.finish(last_round=self.rollout_stats)
        return self
