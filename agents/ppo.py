"""Proximal Policy Optimization.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms", with the implementation
details of Huang et al. 2022, "The 37 Implementation Details of Proximal Policy
Optimization" (ICLR Blog Track); agents/ppo_details.md maps each detail to this code.

The file reads top to bottom: config, the agent (collecting a rollout, the clipped loss,
the update epochs, the learn loop), saving and loading. The policy is any module with the
`ActorCritic` interface, so the same core trains a language model later.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.common import (
    Agent,
    BackgroundRollout,
    LearnerProcess,
    PolicyConfig,
    TrainingRun,
    collect,
    is_text_env,
    learner_process_available,
    make_actor_critic,
    make_rollout_buffer,
    policy_predict,
)
from envs.core import VecEnv
from rlcore.config import ConfigError, check
from rlcore.ensemble import clip_grad_norm_per_member, member_state_dict, stack_modules, unstack_tensor
from rlcore.kl import KL_ESTIMATORS, kl_estimate, make_kl_controller, masked_mean
from rlcore.nets import has_hooks
from rlcore.rollout import normalize_advantages
from rlcore.seeding import rng_state, set_rng_state


@dataclass
class PPOConfig(PolicyConfig):
    learning_rate: float = 3e-4
    """Adam step size (annealed linearly to 0 when anneal_lr)."""
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
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over training."""
    anneal_clip_range: bool = False
    """Anneal the clip range linearly to 0 over training."""
    normalize_advantage: bool = True
    """Normalise advantages per minibatch."""
    adam_eps: float = 1e-5
    """Adam epsilon (1e-5 as in the original PPO code, not PyTorch's 1e-8)."""
    async_rollout: bool = False
    """Collect the next rollout while the update learns from the last one (one update off-policy; the stored
    log-probabilities correct the ratio): on a CPU (Linux) the update runs in a forked learner process,
    elsewhere the rollout in a background thread; on a CPU each side gets half the torch threads. Costs a
    second copy of the policy. Pays off where acting is as costly as learning (Text-v0)."""
    cuda_graph: bool = True
    """On CUDA, capture each minibatch's update step (gather, loss, backward pass, gradient clipping) once as a
    CUDA graph and replay it: one launch instead of some 250 (the same kernels, so the same numbers). False runs
    it eagerly. Not used for Text-v0, with async_rollout (the collector thread launches kernels meanwhile) or
    while the policy has module hooks (a replay would not run them)."""
    # ----- language models: the Text-v0 environment (rlcore/lm.py, envs/text.py); ignored elsewhere -----
    model: str = ""
    """Directory of a Hugging Face causal LM: the policy, its tokenizer and the KL reference."""
    prompts: str = ""
    """Prompts: a .txt (one per line) or .jsonl ("prompt" field) file; empty: the model directory's prompts.txt."""
    reward: str = "vader"
    """Reward: vader, a reward-model directory rm:DIR, module:function, or a weighted sum (2*vader+0.5*rm:DIR)."""
    max_new_tokens: int = 16
    """Tokens generated per episode (n_steps must equal it: a rollout is one round of generation)."""
    group_size: int = 1
    """Completions sampled per prompt (>= 2 with advantage=group)."""
    advantage: str = "gae"
    """gae (token-level GAE with a critic) or group (critic-free: return minus the mean of the prompt's other completions)."""
    critic: str = "head"
    """head (zero-initialised value head on the LM) or separate (a second copy of the model with its own head)."""
    temperature: float = 1.0
    """Sampling temperature (also in the log-probabilities the ratio uses)."""
    top_k: int = 0
    """Sample from the k most likely tokens (0: all)."""
    top_p: float = 1.0
    """Nucleus sampling mass (1: all)."""
    kl_coef: float = 0.05
    """Weight of the KL penalty against the frozen reference model (the initial one when kl_target is set)."""
    kl_target: float | None = None
    """Adaptive KL coefficient (Ziegler et al. 2019) steering the per-episode KL to this; None keeps kl_coef."""
    kl_horizon: int = 10_000
    """Episodes over which the adaptive controller moves the coefficient."""
    kl_estimator: str = "k1"
    """Per-token KL estimator: k1 (log ratio, unbiased), k2 or k3 (non-negative; the loss needs k2 or k3)."""
    kl_penalty: str = "reward"
    """reward: subtract kl_coef * KL from each token's reward (PPO-RLHF); loss: add kl_coef * KL to the loss (GRPO)."""
    missing_eos_penalty: float | None = None
    """Added to the reward of a completion cut at max_new_tokens without EOS (e.g. -1)."""
    reward_normalization: str = "none"
    """Episode rewards: none or running (scaled by the running mean and std of the rewards seen)."""
    lora_r: int = 0
    """LoRA rank (peft); 0 trains every weight. With LoRA the reference is the base model, adapter disabled."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch_size", "n_epochs"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "learning_rate", self.learning_rate > 0, "> 0")
        check(self, "gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]")
        check(self, "clip_range", self.clip_range > 0, "> 0")
        check(self, "clip_range_vf", self.clip_range_vf is None or self.clip_range_vf > 0, "> 0 or None")
        check(self, "target_kl", self.target_kl is None or self.target_kl > 0, "> 0 or None")
        check(self, "advantage", self.advantage in ("gae", "group"), "gae or group")
        check(self, "critic", self.critic in ("head", "separate"), "head or separate")
        check(self, "kl_estimator", self.kl_estimator in KL_ESTIMATORS, f"one of {', '.join(KL_ESTIMATORS)}")
        check(self, "kl_penalty", self.kl_penalty in ("reward", "loss"), "reward or loss")
        check(self, "kl_estimator", self.kl_penalty == "reward" or self.kl_estimator != "k1",
              "k2 or k3 with kl_penalty=loss (k1's gradient is zero in expectation)")
        check(self, "group_size", self.group_size >= (2 if self.advantage == "group" else 1),
              ">= 2 with advantage=group" if self.advantage == "group" else ">= 1")
        check(self, "max_new_tokens", self.max_new_tokens >= 1, ">= 1")
        check(self, "lora_r", self.lora_r >= 0, ">= 0")
        if self.async_rollout and self.compile:  # refused before an environment or a model is built
            raise ConfigError("compile = True is not supported with async_rollout = True: the compiled acting step "
                              "would run in the background thread. Turn one of them off.")
        rollout = self.num_envs * self.n_steps
        check(self, "batch_size", self.batch_size <= rollout,
              f"<= the rollout size num_envs * n_steps = {self.num_envs} * {self.n_steps} = {rollout}")
        check(self, "batch_size", rollout % self.batch_size == 0,
              f"a divisor of the rollout size num_envs * n_steps = {self.num_envs} * {self.n_steps} = {rollout}")


class _CapturedGradients:
    """PPO's minibatch step up to the optimiser (gather from the rollout buffer, loss, backward pass,
    gradient clipping) captured once as a CUDA graph and replayed for every minibatch
    (`PPOConfig.cuda_graph`). At CartPole's network sizes that step is bound by launching some 250
    small kernels from Python, not by arithmetic; a replay is one launch. The graph reads the
    minibatch's row indices and the clip range from tensors of its own, and leaves the loss, the
    statistics and the gradients (each parameter's `.grad`) in memory of its own, rewritten by
    every replay. The optimiser step stays eager, so its state, checkpoints and learning-rate
    schedule are untouched."""

    def __init__(self, agent: "PPO", idx: torch.Tensor, clip_range: float):
        self.idx, self.clip_range = idx.clone(), torch.full((), clip_range, device=agent.device)
        self.buffer, self.param = agent.buffer, next(p for p in agent.policy.parameters() if p.requires_grad)

        def step() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return agent._loss_and_gradients(self.buffer.batch(self.idx), self.clip_range)

        side = torch.cuda.Stream()  # warm-up off the capture, as torch.cuda.graph's docs ask (lazy initialisations)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        agent.optimizer.zero_grad(set_to_none=True)  # the capture allocates the gradients in the graph's memory
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss, self.stats = step()
        self.grad = self.param.grad

    def fits(self, agent: "PPO") -> bool:
        """Still wired to the agent's buffer and gradients (a zero_grad that dropped them needs a new capture)."""
        return agent.buffer is self.buffer and self.param.grad is self.grad

    def __call__(self, idx: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.idx.copy_(idx)
        self.clip_range.fill_(clip_range)
        self.graph.replay()
        return self.loss, self.stats


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


class PPO(Agent):
    """`PPO(env, **hyperparameters)`; `env` is an environment id or a VecEnv (Discrete, Box or MultiDiscrete actions).

    `PPO(env_id, seeds=range(16), ...)` trains one independent agent per seed in this process:
    `num_envs` copies each, their networks stacked (`rlcore.ensemble`) so all seeds take one
    pass. Each seed logs, evaluates and saves into its own run directory; `member(i)` is seed
    `seeds[i]` as a plain PPO agent.
    """

    algo = "ppo"
    config_class = PPOConfig
    action_spaces = (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete)
    checkpoint_state = ("policy", "optimizer", "nan_guard")

    def __init__(self, env: str | VecEnv, seeds: Sequence[int] | None = None, **hyperparameters: Any):
        if seeds is not None:
            seeds = check_seeds(seeds, env, hyperparameters)
            hyperparameters = {**hyperparameters, "seed": seeds[0]}
        self.seeds = seeds
        self.members = len(seeds) if seeds else 1
        super().__init__(env, hyperparameters, members=self.members)
        cfg = self.config
        if self.members == 1:
            self.policy = make_actor_critic(self.env, cfg)
        else:
            for name, bad in (("target_kl", cfg.target_kl is not None), ("normalize_obs", cfg.normalize_obs),
                              ("normalize_reward", cfg.normalize_reward)):
                if bad:  # early stopping would couple the seeds' epochs; shared statistics their inputs
                    raise ValueError(f"{name} = {getattr(cfg, name)} is not supported with several seeds at once: "
                                     "it would couple the seeds. Train them one at a time, or turn it off.")
            members = []
            for seed in seeds:
                torch.manual_seed(seed)  # each seed starts from the weights a run of its own would
                members.append(make_actor_critic(self.env, cfg))
            self.policy = stack_modules(members)
        self.rollout_stats: dict[str, Any] = {}  # reward, KL and length of the last round (text environments)
        if is_text_env(self.env):
            self._check_text_settings()
            self.kl_controller = make_kl_controller(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
            self.checkpoint_state = (*self.checkpoint_state, "kl_controller")
        # fused: one kernel for every parameter; the per-tensor loop cost 5x more on a CPU thread.
        params = [p for p in self.policy.parameters() if p.requires_grad]  # LoRA freezes the base model
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
        self.buffer = make_rollout_buffer(self.env, cfg.n_steps, self.device)
        self._captured: _CapturedGradients | None = None  # cuda_graph on CUDA: captured at the first minibatch
        self.rollouts = None
        self._learner: LearnerProcess | None = None  # async_rollout's updates on a CPU, while `learn` runs
        if cfg.async_rollout:
            self.rollouts = BackgroundRollout(self)
            self.checkpoint_state = (*self.checkpoint_state, "rollouts")

    def _check_text_settings(self) -> None:
        cfg, text = self.config, self.env.unwrapped
        if self.members > 1:
            raise ValueError("Several seeds at once are not supported for Text-v0: train one seed per run.")
        if cfg.n_steps != text.max_new_tokens:
            raise ValueError(f"n_steps = {cfg.n_steps} must equal max_new_tokens = {text.max_new_tokens} for Text-v0: a "
                             "rollout is one round of generation. Set both (e.g. --n-steps 32 --max-new-tokens 32).")
        if cfg.batch_size % cfg.n_steps:
            raise ValueError(f"batch_size = {cfg.batch_size} must be a multiple of n_steps = {cfg.n_steps} for Text-v0: "
                             "minibatches hold whole episodes (batch_size / n_steps completions each).")
        if cfg.advantage == "group" and text.group_size != cfg.group_size:
            raise ValueError(f"advantage = group with group_size = {cfg.group_size}, but the environment samples "
                             f"{text.group_size} completions per prompt: build it with group_size={cfg.group_size}.")
        if cfg.compile:
            raise ValueError("compile = True is not supported for Text-v0: the language model's KV cache changes "
                             "shape every step.")

    def member(self, m: int) -> "PPO":
        """Seed `seeds[m]` of a several-seed agent as a plain PPO agent (its own environment, its
        weights, optimiser state and counters), e.g. to evaluate or save it; `self` with one seed."""
        if self.members == 1:
            return self
        self.pull_learner_state()
        saved = rng_state()  # building an agent reseeds the global RNGs; training must not notice
        try:
            agent = PPO(self.env_id, **{**dataclasses.asdict(self.config), "seed": self.seeds[m]})
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
        self.pull_learner_state()
        return super().save(path, include_buffer)

    def pull_learner_state(self) -> None:
        """Mid-run with async_rollout on a CPU the optimiser's state is the learner process's: copy it here."""
        if self._learner is not None:
            self._learner.pull()

    # ----- acting -------------------------------------------------------------------------
    def predict(self, obs: torch.Tensor | np.ndarray, deterministic: bool = True) -> torch.Tensor | np.ndarray:
        """Actions the environment receives for a batch of observations (or one unbatched one)."""
        return policy_predict(self, obs, deterministic)

    # ----- learning -----------------------------------------------------------------------
    def _loss(self, batch, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg, members = self.config, self.members
        mask = batch.mask  # text episodes: the steps a copy idled after its EOS carry no weight

        def mean(x: torch.Tensor) -> torch.Tensor:  # [members]: each seed's minibatch is its own (member-major rows)
            if mask is None:
                return x.reshape(members, -1).mean(1)
            return masked_mean(x, mask).reshape(1)

        logprob, entropy, value = self.policy.evaluate_actions(batch.obs, batch.actions)
        log_ratio = logprob - batch.logprobs
        ratio = log_ratio.exp()
        advantages = batch.advantages
        if cfg.normalize_advantage:
            advantages = (normalize_advantages(advantages, mask=mask) if mask is not None else
                          normalize_advantages(advantages.reshape(members, -1), dim=1).reshape(advantages.shape))
        # Clipped surrogate: the pessimistic (larger) of the two losses.
        policy_loss = mean(torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)))
        if cfg.clip_range_vf is None:
            value_loss = 0.5 * mean((value - batch.returns).pow(2))
        else:
            clipped = batch.values + (value - batch.values).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
            value_loss = 0.5 * mean(torch.max((value - batch.returns).pow(2), (clipped - batch.returns).pow(2)))
        # With no entropy bonus the entropy is only logged: no backward pass through it.
        entropy_mean = mean(entropy if cfg.ent_coef else entropy.detach())
        # Summed over seeds: each seed's parameters get exactly the gradient of its own loss.
        loss = (policy_loss - cfg.ent_coef * entropy_mean + cfg.vf_coef * value_loss).sum()
        stats = {}
        if batch.ref_logprobs is not None:  # kl_penalty=loss: KL to the reference, differentiated (GRPO)
            kl = mean(kl_estimate(logprob, batch.ref_logprobs, cfg.kl_estimator))
            loss = loss + self.kl_controller.coef * kl.sum()
            stats["losses/kl_loss"] = kl.detach()
        with torch.no_grad():
            # The low-variance KL estimator (ratio - 1) - log ratio (Schulman 2020; details #12).
            approx_kl = mean((ratio - 1) - log_ratio)
            clipfrac = mean(((ratio - 1).abs() > clip_range).float())
        return loss, {"losses/policy_loss": policy_loss.detach(), "losses/value_loss": value_loss.detach(),
                      "losses/entropy": entropy_mean.detach(), "losses/approx_kl": approx_kl,
                      "losses/clipfrac": clipfrac, **stats}

    def _loss_and_gradients(self, batch, clip_range: float | torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One minibatch's loss and statistics, and its clipped gradients in each parameter's `.grad`."""
        loss, stats = self._loss(batch, clip_range)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_per_member(self.policy.parameters(), self.config.max_grad_norm, self.members)
        return loss, stats

    def _captured_step(self, idx: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`_loss_and_gradients` of the minibatch at rows `idx`, replayed from a CUDA graph (captured
        at the first call). Its outputs are overwritten by the next call."""
        if self._captured is None or not self._captured.fits(self):
            self._captured = _CapturedGradients(self, idx, clip_range)
        return self._captured(idx, clip_range)

    def _update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        self.anneal_learning_rate()
        clip_range = cfg.clip_range * self.progress_left() if cfg.anneal_clip_range else cfg.clip_range
        num_minibatches = cfg.n_steps * (self.env.num_envs // self.members) // cfg.batch_size
        sequences = getattr(self.policy, "sequence_level", False)  # a language model scores whole episodes
        captured = (cfg.cuda_graph and self.device.type == "cuda" and not sequences and self.rollouts is None
                    and not has_hooks(self.policy))  # a replay would not run them
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for _ in range(cfg.n_epochs):
            shuffle = self.rollouts.shuffle if self.rollouts is not None else None  # else the global RNG
            if captured:
                steps = (self._captured_step(idx, clip_range)
                         for idx in self.buffer.minibatch_indices(num_minibatches, shuffle, members=self.members))
            else:
                steps = (self._loss_and_gradients(batch, clip_range) for batch in
                         self.buffer.minibatches(num_minibatches, shuffle, members=self.members, sequences=sequences))
            for loss, stats in steps:
                self.optimizer.step()
                self.nan_guard.record(loss, self.global_step)
                sums = {k: sums.get(k, 0) + v for k, v in stats.items()}
                count += 1
            # Early stop on the last minibatch's KL: one sync per epoch, never per step.
            if cfg.target_kl is not None and float(stats["losses/approx_kl"]) > cfg.target_kl:
                break
        self.num_updates += 1
        # Per seed: [T, members * N] -> [members, T * N].
        values, returns, valid = (x.view(cfg.n_steps, self.members, -1).transpose(0, 1).reshape(self.members, -1)
                                  for x in (self.buffer.values, self.buffer.returns, self.buffer.valid))
        weight = valid.float()

        def variance(x: torch.Tensor) -> torch.Tensor:  # over the real steps
            m = (x * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True)
            return ((x - m).square() * weight).sum(1) / (weight.sum(1) - 1).clamp_min(1)

        explained_var = 1 - variance(returns - values) / variance(returns).clamp_min(1e-8)
        return {**{k: v / count for k, v in sums.items()}, "losses/explained_variance": explained_var,
                "charts/learning_rate": self.optimizer.param_groups[0]["lr"], "charts/clip_range": clip_range,
                **self.rollout_stats}

    def learn(self, total_steps: int, run_dir: str | Path | None = None, progress: bool = True,
              eval_every: int = 0, eval_episodes: int = 20, stop_at_return: float | None = None) -> "PPO":
        """Train until `total_steps` environment steps of this run (a resumed agent continues up to it).

        Writes TensorBoard events, checkpoints and `summary.json` to `run_dir` (default
        `runs/<env>__ppo__<seed>__<time>`). With `eval_every`, evaluates deterministically every
        so many steps, and stops early once the mean over `eval_episodes` reaches `stop_at_return`.
        """
        if eval_every and is_text_env(self.env):
            raise ValueError("eval_every is not supported for Text-v0: the reward of every round's sampled completions "
                             "is logged as charts/reward_mean instead.")
        with TrainingRun(self, total_steps, run_dir, progress, eval_every, eval_episodes, stop_at_return,
                         phases=("rollout", "update")) as run:
            if self.rollouts is not None:
                self._learn_async(run, total_steps)
                return self
            while self.global_step < total_steps:
                with run.timing.phase("rollout"):
                    collect(self, self.config.gamma, self.config.gae_lambda)
                with run.timing.phase("update"):
                    stats = self._update()
                if run.step_done(stats):
                    break
        return self

    def _learn_async(self, run: TrainingRun, total_steps: int) -> None:
        """`learn` with async_rollout: round k + 1 is collected (by the weights before update k) while
        update k runs: on a CPU the round here and the update in a `LearnerProcess`, elsewhere the
        update here and the round in a thread. Between updates nothing else runs, so logging,
        checkpoints and Ctrl-C see a consistent agent (the collected round goes into the checkpoint)."""
        rollouts = self.rollouts
        rollouts.sync()  # the learner's weights may have been loaded since the collector copied them
        learner = LearnerProcess(self) if self.global_step < total_steps and learner_process_available(self) else None
        self._learner = learner
        with rollouts.split_threads() as split:
            try:
                while self.global_step < total_steps:
                    with run.timing.phase("rollout"):
                        rollouts.take()  # the first round is collected here, alone
                    overlap = self.global_step < total_steps  # else this is the last update: nothing to collect
                    split(overlap)
                    if learner is not None:
                        learner.start()
                        if overlap:
                            with run.timing.phase("rollout"):
                                rollouts.collect()
                        with run.timing.phase("update"):  # waiting for the update
                            stats = learner.wait()
                    else:
                        with run.timing.phase("update"):
                            if overlap:
                                rollouts.start()
                            stats = self._update()
                    with run.timing.phase("rollout"):  # waiting for the background round (a thread's)
                        rollouts.wait()
                    if run.step_done(stats):
                        break
            except BaseException:
                if learner is not None:
                    with contextlib.suppress(Exception):  # the error on its way is the one to report
                        learner.close()
                raise
            else:
                if learner is not None:
                    learner.close()
            finally:
                self._learner = None
                rollouts.wait(raise_error=False)
