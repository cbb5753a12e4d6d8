"""The offline sentiment experiment, measured: VADER reward and KL of PPO's sampled completions over time.

    python tests/benchmarks/bench_lm_sentiment.py [--model runs/tiny-lm] [--minutes 10] [--threads 2] [--seed 0]

Runs `rl pretrain-lm --out MODEL` first when MODEL does not exist, then trains
`rl train ppo Text-v0 --model MODEL` (the Text-v0 preset: 64 completions of 16 tokens per
round, VADER compound reward, KL penalty 0.05 against the pretrained model) until the budget of
`--minutes` of training runs out, and prints a table of the mean reward of each minute's sampled
completions with the per-completion KL to the reference, read back from the run's TensorBoard.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def table(run_dir: Path, start: float) -> list[dict[str, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    reward, kl = events.Scalars("charts/reward_mean"), events.Scalars("charts/kl")
    rows, minute = [], 0
    for r, k in zip(reward, kl):
        if r.wall_time - start >= minute * 60 or r is reward[-1]:
            rows.append({"minutes": (r.wall_time - start) / 60, "step": r.step, "reward_mean": r.value, "kl": k.value})
            minute += 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/tiny-lm")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from agents import PPO
    from agents.tiny_lm import pretrain

    if not Path(args.model).is_dir():
        pretrain(args.model, minutes=2.0, seed=args.seed)
    run_dir = Path(args.run_dir or f"runs/bench/lm_sentiment_{time.strftime('%Y%m%d-%H%M%S')}")
    agent = PPO("Text-v0", model=args.model, seed=args.seed)
    agent.obs, _ = agent.env.reset(seed=args.seed)
    budget, start = args.minutes * 60, time.time()
    total = 0
    while time.time() - start < budget:  # learn in slices of 10 rounds, so the clock is checked often
        total += 10 * agent.config.num_envs * agent.config.n_steps
        agent.learn(total, run_dir=run_dir, progress=False)
    rows = table(run_dir, start)
    print(f"Text-v0 PPO on {args.model}, {args.threads} thread(s), seed {args.seed}, {args.minutes:g} min budget")
    print("| minute | step | mean VADER reward of the round's 64 completions | KL to the reference per completion |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['minutes']:.1f} | {r['step']:,} | {r['reward_mean']:+.3f} | {r['kl']:.2f} |")
    print(f"Rise: {rows[-1]['reward_mean'] - rows[0]['reward_mean']:+.3f} (first round to last)")
    (run_dir / "sentiment_table.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
