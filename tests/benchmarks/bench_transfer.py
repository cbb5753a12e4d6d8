"""Train on the torch-native environment, score the final model on both implementations.

    python tests/benchmarks/bench_transfer.py Pendulum-v1 [--seeds 1-2] [--budget 2000000] [--episodes 100]
        [--hp '{"num_envs": 8, "n_steps": 2048}']

PPO with the id's preset (and --hp over it) trains `--budget` steps on the torch-native version, one torch
thread, no evaluations on the way; the final model is then scored deterministically over `--episodes`
episodes (start states from seed 123) on the torch-native version and on gymnasium's, with the training
run's observation statistics frozen. One JSON line per seed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch


def main() -> None:
    from agents import PPO
    from agents.cli import parse_seeds
    from rlcore import evaluate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id")
    parser.add_argument("--seeds", type=parse_seeds, default="1-2", help="e.g. 1-2 or 0,3,7-9")
    parser.add_argument("--budget", type=int, default=2_000_000)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--hp", type=json.loads, default={}, help="hyperparameters over the preset, as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = tempfile.mkdtemp(prefix="bench_transfer_")
    for seed in args.seeds:
        agent = PPO(args.env_id, seed=seed, backend="torch", checkpoint_interval=0, **args.hp)
        start = time.perf_counter()
        agent.learn(args.budget, run_dir=f"{root}/{seed}", progress=False)
        row = {"env_id": args.env_id, "seed": seed, "steps": args.budget, "hp": args.hp,
               "wall_time": round(time.perf_counter() - start, 1), "torch": torch.__version__}
        for backend in ("torch", "gymnasium"):
            agent.config.backend = backend  # evaluation environments are built from the config
            mean, std = evaluate(agent, args.env_id, episodes=args.episodes, seed=123)
            row[f"{backend}_eval_{args.episodes}ep"] = [round(mean, 1), round(std, 1)]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
