"""Fine-tuning a language model by reward with PPO: what Text-v0 adds to a PPO run.

The environment (`envs.text`) and the policy (`rlcore.lm`) are built from their own settings;
after each round of generation the KL penalty against the frozen reference model shapes the
rewards (or goes into the loss), and the advantages come from GAE with the critic or from the
group baseline. Also here: evaluating the sampled completions and the table of samples that
TensorBoard shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

import envs
from envs import TEXT_ENV_ID
from envs.core import VecEnv
from envs.text import TextEnvConfig
from rlcore.kl import KLConfig, kl_estimate
from rlcore.lm import LMActorCritic, LMPolicyConfig
from rlcore.rollout import RolloutBuffer


def make_text_env(env_config: TextEnvConfig, policy_config: LMPolicyConfig, num_envs: int, seed: int,
                  device: str | torch.device) -> VecEnv:
    """Text-v0 for these settings, tokenised by the policy's model (its prompts.txt when no prompts are given)."""
    model = policy_config.model
    if not model:
        raise ValueError(f"{TEXT_ENV_ID} needs a language model: give model (--model DIR), a directory a Hugging Face "
                         "causal LM and its tokenizer were saved to, e.g. by `rl pretrain-lm --out DIR`.")
    if not Path(model).is_dir():
        raise FileNotFoundError(f"model = {model!r}: no such directory. Give the directory a Hugging Face causal "
                                "LM was saved to (save_pretrained), e.g. by `rl pretrain-lm --out DIR`.")
    prompts = env_config.prompts or str(Path(model) / "prompts.txt")
    if not Path(prompts).exists():
        raise FileNotFoundError(f"No prompts: {prompts!r} does not exist. Give prompts (--prompts FILE): a .txt file "
                                "with one prompt per line or a .jsonl file with a \"prompt\" field.")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model, local_files_only=True)
    context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return envs.make(TEXT_ENV_ID, num_envs=num_envs, seed=seed, device=device, tokenizer=model, context_length=context,
                     **{**env_config.env_kwargs(), "prompts": prompts})


def make_lm_policy(policy_config: LMPolicyConfig, env: VecEnv, device: str | torch.device,
                   critic_free: bool) -> LMActorCritic:
    """The language-model policy for `env`'s prompt and completion lengths (no critic when `critic_free`)."""
    text = env.unwrapped
    return LMActorCritic.from_config(policy_config, text.prompt_len, text.max_new_tokens, device,
                                     critic="none" if critic_free else None)


def round_statistics(buffer: RolloutBuffer) -> dict[str, torch.Tensor]:
    """A round's mean episode reward and completion length (before any KL shaping)."""
    valid = buffer.valid
    return {"charts/reward_mean": torch.where(valid, buffer.rewards, 0.0).sum(0).mean(),
            "charts/response_length": valid.sum(0).float().mean()}


def apply_kl(buffer: RolloutBuffer, policy: LMActorCritic, kl: KLConfig, coef: float,
             episodes_per_pass: int) -> torch.Tensor:
    """The KL of the round in `buffer` against the reference model, per token, put to work as `kl.penalty`
    says: subtracted (times `coef`) from each token's reward, or kept for the loss (`ref_logprobs`).
    Returns the mean per-episode KL (summed over its tokens, Ziegler et al.'s unit). The reference
    pass runs `episodes_per_pass` episodes at a time: the logits of a whole round at once can
    outgrow memory the update never needs."""
    obs, actions = buffer.obs.transpose(0, 1), buffer.actions.transpose(0, 1)  # [N, T, ...]: whole episodes
    ref = torch.cat([policy.reference_logprobs(o, a) for o, a in
                     zip(obs.split(episodes_per_pass), actions.split(episodes_per_pass))]).transpose(0, 1)  # [T, N]
    per_token = torch.where(buffer.valid, kl_estimate(buffer.logprobs, ref, kl.estimator), 0.0)
    if kl.penalty == "reward":
        buffer.rewards.sub_(coef * per_token)
    else:
        buffer.ref_logprobs.copy_(ref)
        buffer.has_ref_logprobs = True
    return per_token.sum(0).mean()


def text_advantages(buffer: RolloutBuffer, group_size: int | None, gamma: float, lam: float) -> None:
    """Every episode ended within the round: GAE bootstraps from nothing; or, with `group_size`,
    the critic-free group baseline over the completions of each prompt."""
    if group_size is not None:
        buffer.compute_group_advantages(group_size)
    else:
        buffer.compute_returns_and_advantages(torch.zeros(buffer.num_envs, device=buffer.device), gamma, lam)


class EnvCopies(Protocol):
    num_envs: int
    seed: int


class TextAgent(Protocol):
    """What `evaluate_text` needs of an agent."""

    policy: LMActorCritic
    config: EnvCopies
    env_config: TextEnvConfig
    policy_config: LMPolicyConfig
    device: torch.device


def evaluate_text(agent: TextAgent, episodes: int = 64, seed: int | None = None) -> tuple[float, float, dict[str, list]]:
    """Mean and standard deviation of the reward-function score of `episodes` completions the
    policy samples (its temperature, top-k and top-p) for fresh prompts, with the samples. A new
    environment is built, so the training environment's prompt order is untouched."""
    if episodes < 1:
        raise ValueError(f"episodes = {episodes} is invalid: must be >= 1.")
    env = make_text_env(agent.env_config, agent.policy_config, agent.config.num_envs, agent.config.seed, agent.device)
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


def samples_table(samples: dict[str, Any], rows: int = 8) -> str:
    """The first `rows` prompts, completions and rewards of a round, as a markdown table for TensorBoard."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| prompt | completion | reward |", "|---|---|---:|"]
    for prompt, completion, reward in list(zip(samples["prompts"], samples["completions"], samples["rewards"]))[:rows]:
        lines.append(f"| {cell(prompt)} | {cell(completion)} | {float(reward):.3f} |")
    return "\n".join(lines)


def check_export_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """An export goes to a new or empty directory, or over one only when asked: nothing of the user's is lost."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"--out {out} exists and is not empty: choose a new directory, or pass --overwrite "
                              "(Python: overwrite=True) to write over it.")
    return out


def export_pretrained(policy: LMActorCritic, policy_config: LMPolicyConfig, env_config: TextEnvConfig,
                      out_dir: str | Path, adapter_only: bool = False, overwrite: bool = False) -> Path:
    """The fine-tuned policy as a Hugging Face directory that `AutoModelForCausalLM.from_pretrained` opens:
    its weights (LoRA merged into them, or with `adapter_only` the adapter alone, for
    `PeftModel.from_pretrained(base, out_dir)`), the base model's tokenizer, and a generation config with
    the run's sampling settings. The value head stays behind: it is the trainer's, not the model's."""
    import copy

    from transformers import AutoTokenizer, GenerationConfig

    out = check_export_dir(out_dir, overwrite)
    if adapter_only and not policy.lora:
        raise ValueError("--adapter: this run trained every weight (lora_r = 0), so there is no adapter to save "
                         "alone: export without --adapter.")
    out.mkdir(parents=True, exist_ok=True)
    lm = policy.lm
    if policy.lora and not adapter_only:
        lm = copy.deepcopy(lm).merge_and_unload()  # the live policy keeps its adapter
    lm.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(policy_config.model, local_files_only=True)
    tokenizer.save_pretrained(out)
    GenerationConfig(do_sample=True, temperature=policy_config.temperature, top_k=policy_config.top_k or None,
                     top_p=policy_config.top_p, max_new_tokens=env_config.max_new_tokens,
                     eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
                     ).save_pretrained(out)
    return out
