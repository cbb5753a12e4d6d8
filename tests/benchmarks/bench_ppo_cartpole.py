"""PPO on CartPole-v1, side by side with Stable-Baselines3's zoo-tuned PPO, in one process.

    python tests/benchmarks/bench_ppo_cartpole.py [--backend gymnasium|torch] [--settings preset|fast]
        [--seeds 0-4] [--sb3-seeds 0-2] [--eval-every 10000] [--out FILE]

Ours: the CartPole-v1 preset (the zoo's hyperparameters), or with `--settings fast` the preset
with `agents.bench.FAST_CARTPOLE_PPO` over it (what `rl bench` runs), up to 100k environment
steps, a deterministic 20-episode evaluation every `--eval-every` steps, stopping once the mean
reaches 475.
SB3: the zoo's CartPole-v1 PPO for its full 100k-step budget (the reference wall time the
issue compares against), then the same deterministic 20-episode evaluation.
Wall times are training time only (evaluation excluded); one torch thread for both (`--threads`).
`--backend torch` trains ours on the torch-native CartPole and also evaluates each final model
on gymnasium's CartPole-v1 (20 episodes), to show the policy transfers (`rl bench --only ppo`
runs that comparison too, with a markdown report and a plot). The measuring code is
`agents/bench.py`'s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from agents.bench import FAST_CARTPOLE_PPO, ours_ppo_cartpole, sb3_ppo_cartpole
from agents.cli import parse_seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=parse_seeds, default="0-4", help="e.g. 0-4 or 0,3,7-9")
    parser.add_argument("--sb3-seeds", type=parse_seeds, default="0-2")
    parser.add_argument("--out", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="gymnasium", choices=("gymnasium", "torch"))
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--settings", default="preset", choices=("preset", "fast"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = tempfile.mkdtemp(prefix="bench_ppo_")
    settings = FAST_CARTPOLE_PPO if args.settings == "fast" else None
    rows = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), "
                       f"torch {torch.__version__}", "backend": args.backend,
            "settings": settings or "preset", "ours": [], "sb3": []}
    for seed in args.sb3_seeds:
        rows["sb3"].append(sb3_ppo_cartpole(seed))
        print("sb3 ", json.dumps(rows["sb3"][-1]), flush=True)
    for seed in args.seeds:
        rows["ours"].append(ours_ppo_cartpole(seed, 100_000, Path(root), args.backend, args.eval_every, settings))
        print("ours", json.dumps(rows["ours"][-1]), flush=True)
    sb3_wall = statistics.median(r["wall_time"] for r in rows["sb3"])
    reached = [r for r in rows["ours"] if r["reached"]]
    ours_wall = statistics.median(r["wall_time"] for r in reached) if reached else float("nan")
    print(f"SB3 zoo PPO, 100k steps: median wall time {sb3_wall:.1f} s, final evaluations "
          f"{[round(r['final_mean_return'], 1) for r in rows['sb3']]}")
    print(f"ours: reached 475 in {len(reached)}/{len(rows['ours'])} seeds, median wall time to 475 {ours_wall:.1f} s "
          f"(ratio to SB3's budget: 1/{sb3_wall / ours_wall:.1f}); steps {[r['steps'] for r in rows['ours']]}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
