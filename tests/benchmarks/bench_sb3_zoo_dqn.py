"""Stable-Baselines3's own DQN with rl-baselines3-zoo's hyperparameters, on this machine's gymnasium: the
reference for "DQN at the zoo's budgets" (the zoo's table is one run; what does its recipe give per seed?).

    python tests/benchmarks/bench_sb3_zoo_dqn.py MountainCar-v0|Acrobot-v1|LunarLander-v3 [--seeds 0-3] [--out FILE]

Trains each seed for the zoo's budget, then evaluates the final model greedily over 50 episodes seeded
1000 + seed, as `bench_dqn_classic.py` does for ours. Needs the `bench` extra (SB3); LunarLander the `box2d`
extra too. One torch thread.
Prints one JSON line per seed; `--out` also writes them as a JSON list.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_dqn_classic import ZOO as TABLE  # the zoo's benchmark table (one run each), as ours is judged

from agents.cli import parse_seeds
from agents.returns import GOALS

# hyperparams/dqn.yml of rl-baselines3-zoo, as `rl bench --returns` trains it.
ZOO = {env: {"n_timesteps": goal.sb3.steps, "kwargs": goal.sb3.kwargs}
       for (algo, env), goal in GOALS.items() if algo == "dqn" and env in TABLE}


def main() -> None:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id", choices=sorted(ZOO))
    parser.add_argument("--seeds", type=parse_seeds, default="0-0", help="e.g. 0-3 or 0,3,7-9")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    zoo = ZOO[args.env_id]
    rows = []
    for seed in args.seeds:
        model = DQN("MlpPolicy", make_vec_env(args.env_id, n_envs=1, seed=seed), seed=seed, verbose=0, **zoo["kwargs"])
        started = time.perf_counter()
        model.learn(zoo["n_timesteps"])
        wall = time.perf_counter() - started
        mean, std = evaluate_policy(model, make_vec_env(args.env_id, n_envs=1, seed=1_000 + seed), n_eval_episodes=50,
                                    deterministic=True, warn=False)
        rows.append({"env_id": args.env_id, "library": "sb3", "seed": seed, "steps": zoo["n_timesteps"],
                     "mean_return": round(float(mean), 1), "std_return": round(float(std), 1), "zoo": TABLE[args.env_id],
                     "wall_time": round(wall, 1), "torch": torch.__version__})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
