"""DQN presets on Acrobot-v1, MountainCar-v0 and LunarLander-v3 at rl-baselines3-zoo's step budgets.

    python tests/benchmarks/bench_dqn_classic.py [--envs Acrobot-v1,MountainCar-v0,LunarLander-v3] [--seeds 0-0]
        [--hp '{"n_step": 3}']

Each run trains the preset for the zoo's budget, then evaluates greedily over 50 episodes.
The zoo's benchmark table (one run each, DQN): Acrobot-v1 -76.6 at 100k, MountainCar-v0
-100.8 at 120k, LunarLander(-v2) 154.4 at 100k. LunarLander needs the box2d extra.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

ZOO = {"Acrobot-v1": -76.639, "MountainCar-v0": -100.849, "LunarLander-v3": 154.382}


def main() -> None:
    from agents import DQN
    from agents.cli import parse_seeds
    from agents.presets import preset_total_steps
    from rlcore import evaluate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default=",".join(ZOO))
    parser.add_argument("--seeds", type=parse_seeds, default="0-0", help="e.g. 0-4 or 0,3,7-9")
    parser.add_argument("--out", default=None)
    parser.add_argument("--backend", default="gymnasium", choices=("gymnasium", "torch", "auto"),
                        help="environment implementation (the recorded figures used gymnasium's)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--hp", type=json.loads, default={}, help="hyperparameters over the preset, as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = tempfile.mkdtemp(prefix="bench_dqn_classic_")
    rows = []
    for env_id in args.envs.split(","):
        for seed in args.seeds:
            steps = preset_total_steps("dqn", env_id)
            t0 = time.perf_counter()
            agent = DQN(env_id, seed=seed, checkpoint_interval=0, backend=args.backend, **args.hp)
            agent.learn(steps, run_dir=f"{root}/{env_id}_{seed}", progress=False)
            wall = time.perf_counter() - t0
            mean, std = evaluate(agent, env_id, episodes=50, seed=1_000 + seed)
            rows.append({"env_id": env_id, "seed": seed, "steps": steps, "mean_return": round(mean, 1),
                         "std_return": round(std, 1), "zoo": ZOO.get(env_id), "wall_time": round(wall, 1), "hp": args.hp,
                         "torch": torch.__version__})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
