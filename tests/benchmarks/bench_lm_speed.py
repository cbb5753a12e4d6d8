"""Completions per second of PPO on Text-v0 for a GPT-2-small-sized model (random weights).

    python tests/benchmarks/bench_lm_speed.py --device cuda [--num-envs 256] [--new-tokens 64] [--iterations 5]

Builds, in a temporary directory, a word-level tokenizer of GPT-2's vocabulary size (50,257
made-up words, so the model is GPT-2 small to the parameter: 12 layers, 768 wide, 124M) and
prompts of `--prompt-tokens` random words; the reward is a cheap function of the text (the
share of words starting with "w1"), so the figure is the agent's speed, not the reward's.
Each mode (PPO with a value head and GAE; the critic-free group baseline with 8 completions
per prompt and the KL in the loss) runs one warm-up iteration and then `--iterations` timed
ones (a round of generation with the KV cache, the reference pass, `--epochs` epochs of updates).
The modes `ppo_async` and `group_async` run the same with `async_rollout=True`: the loop of
`PPO._learn_async` as it runs off a CPU (take the collected round, start generating the next in a
background thread, update, wait), so there is no split between collection and update. On a CPU,
`learn` runs the update in a learner process instead (`rlcore.async_rollout.LearnerProcess`), which this
loop does not reproduce; `bench_lm_grpo.py` times it through `learn`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import torch


def share_of_w1(prompts: list[str], completions: list[str]) -> list[float]:
    return [sum(w.startswith("w1") for w in c.split()) / max(len(c.split()), 1) for c in completions]


def build(root: Path, vocab: int, layers: int, width: int, prompt_tokens: int, new_tokens: int, prompts: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{f"w{i}": i + 3 for i in range(vocab - 3)}}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", pad_token="<pad>")
    config = GPT2Config(vocab_size=vocab, n_positions=max(1024, prompt_tokens + new_tokens), n_embd=width,
                        n_layer=layers, n_head=max(width // 64, 1), bos_token_id=1, eos_token_id=1, pad_token_id=0)
    d = root / "model"
    GPT2LMHeadModel(config).save_pretrained(d)
    tokenizer.save_pretrained(d)
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(f"w{i}" for i in torch.randint(0, vocab - 3, (prompt_tokens,), generator=g).tolist())
             for _ in range(prompts)]
    (d / "prompts.txt").write_text("\n".join(lines) + "\n")
    return d


def run(mode: str, model: Path, args: argparse.Namespace) -> dict:
    from agents import PPO
    from rlcore.timing import Timing

    group, overlap = mode.startswith("group"), mode.endswith("_async")
    T, N = args.new_tokens, args.num_envs
    agent = PPO("Text-v0", model=str(model), reward="lm_speed_rewards:share_of_w1", device=args.device, num_envs=N,
                n_steps=T, max_new_tokens=T, batch_size=T * args.minibatch_completions, n_epochs=args.epochs, learning_rate=1e-5,
                advantage="group" if group else "gae", group_size=8 if group else 1,
                kl_penalty="loss" if group else "reward", kl_estimator="k3" if group else "k1", checkpoint_interval=0,
                async_rollout=overlap)
    sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
    name = "PPO (value head, GAE)" if not group else "group baseline (8 per prompt, KL in loss)"
    params = sum(p.numel() for p in agent.policy.lm.parameters())
    peak = (lambda: torch.cuda.max_memory_allocated() / 2**30) if agent.device.type == "cuda" else (lambda: None)
    agent.total_steps = 10**12
    agent.obs, _ = agent.env.reset(seed=0)
    if overlap:  # the hot loop of PPO.learn with async_rollout (learn would add saving a 124M-parameter checkpoint)
        rollouts, timing = agent.rollouts, Timing("rollout", "update")
        try:
            for i in range(1 + args.iterations):
                if i == 1:
                    sync()
                    start = time.perf_counter()
                round, agent.buffer = rollouts.take(agent.obs, agent.buffer)
                agent.start_round(round)
                rollouts.update(agent._update, agent.buffer, agent.global_step, agent.kl_coef, agent.obs, timing)
            sync()
            total = time.perf_counter() - start
        finally:
            rollouts.stop()
        return {"mode": name + ", async_rollout", "completions_per_s": args.iterations * N / total,
                "collect_completions_per_s": None, "update_share": None, "generated_tokens_per_s": None,
                "params": params, "peak_gib": peak()}
    seconds = {"collect": 0.0, "update": 0.0}
    for i in range(1 + args.iterations):
        sync()
        start = time.perf_counter()
        agent.start_round(agent.collect_round(agent.policy, agent.buffer, agent.obs))
        sync()
        middle = time.perf_counter()
        agent._update(agent.buffer, agent.global_step, agent.kl_coef)
        sync()
        if i:
            seconds["collect"] += middle - start
            seconds["update"] += time.perf_counter() - middle
    completions = args.iterations * N
    total = seconds["collect"] + seconds["update"]
    return {"mode": name, "completions_per_s": completions / total,
            "collect_completions_per_s": completions / seconds["collect"], "update_share": seconds["update"] / total,
            "generated_tokens_per_s": completions * T / seconds["collect"], "params": params, "peak_gib": peak()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vocab", type=int, default=50_257)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--minibatch-completions", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--modes", default="ppo,group", help="of ppo, group, ppo_async, group_async")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    sys.modules["lm_speed_rewards"] = types.SimpleNamespace(share_of_w1=share_of_w1)
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp), args.vocab, args.layers, args.width, args.prompt_tokens, args.new_tokens, 512)
        rows = [run(mode, model, args) for mode in args.modes.split(",")]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{device}, torch {torch.__version__}; {rows[0]['params'] / 1e6:.0f}M parameters, {args.num_envs} completions "
          f"per round, {args.prompt_tokens}-token prompts, {args.new_tokens} new tokens, fp32 (TF32 matmuls)")
    print("| mode | completions/s (collect + update) | collect only | generated tokens/s | update share | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        if r["collect_completions_per_s"] is None:  # async: collection and update overlap
            print(f"| {r['mode']} | {r['completions_per_s']:.1f} | - | - | - | {peak} |")
        else:
            print(f"| {r['mode']} | {r['completions_per_s']:.1f} | {r['collect_completions_per_s']:.1f} | "
                  f"{r['generated_tokens_per_s']:,.0f} | {r['update_share']:.0%} | {peak} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "device": device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
