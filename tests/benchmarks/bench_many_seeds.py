"""Wall time of 16 PPO seeds trained at once (stacked networks, one process) against one seed.

    python tests/benchmarks/bench_many_seeds.py [--seeds 16] [--steps 50000] [--threads 1]

Both use the CartPole-v1 preset on the torch-native CartPole for the same number of steps per
seed, without evaluation; printed: each wall time, the ratio, and the 16 seeds' final
deterministic evaluations (so the stacked run is seen to learn like single runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from agents import PPO
    from rlcore import evaluate

    root = tempfile.mkdtemp(prefix="bench_seeds_")
    walls = {}
    for label, seeds in (("1 seed", None), (f"{args.seeds} seeds", list(range(args.seeds)))):
        agent = PPO("CartPole-v1", seeds=seeds, checkpoint_interval=0)
        start = time.perf_counter()
        agent.learn(args.steps, run_dir=f"{root}/{label.replace(' ', '_')}", progress=False)
        walls[label] = time.perf_counter() - start  # includes writing each seed's checkpoint and model
        members = [agent] if seeds is None else [agent.member(m) for m in range(len(seeds))]
        returns = [evaluate(m, "CartPole-v1", episodes=20, seed=10_000)[0] for m in members]
        print(f"{label}: {walls[label]:.1f} s for {args.steps:,} steps per seed; final evaluation median "
              f"{statistics.median(returns):.1f}, per seed {[round(r) for r in returns]}", flush=True)
    one, many = walls["1 seed"], walls[f"{args.seeds} seeds"]
    print(f"{args.seeds} seeds at once took {many / one:.2f}x the wall time of one seed "
          f"({args.threads} torch thread(s), torch {torch.__version__})")


if __name__ == "__main__":
    sys.exit(main())
