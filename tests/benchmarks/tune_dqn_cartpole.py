"""Tuning runs for the DQN CartPole-v1 preset, on tuning seeds (never the fresh seeds of a claim).

    python tests/benchmarks/tune_dqn_cartpole.py '{"preset": {}, "anneal_lr": {"anneal_lr": true}}' 0,1,2,3,4,5,6,7,8,9

Each variant (hyperparameters over the preset) trains 100k steps per seed with a greedy 20-episode
evaluation every 5k steps; the final and best models are scored over 50 episodes of gymnasium's
CartPole. One JSON line per run. The fresh-seed claim is `rl bench --returns --algo dqn --env CartPole-v1`.
"""
import json
import sys
import tempfile
import time
import warnings

import torch

from agents import DQN
from rlcore.evaluation import evaluate

torch.set_num_threads(1)
warnings.filterwarnings("ignore", ".*restart their episodes", RuntimeWarning)
variants = json.loads(sys.argv[1])
seeds = [int(s) for s in sys.argv[2].split(",")]
for seed in seeds:
    for name, hp in variants.items():
        d = tempfile.mkdtemp()
        a = DQN("CartPole-v1", seed=seed, checkpoint_interval=0, **hp)
        t = time.perf_counter()
        a.learn(100_000, run_dir=d, progress=False, eval_every=5_000, eval_episodes=20)
        final, best = DQN.load(d, backend="gymnasium"), DQN.load(d, best=True, backend="gymnasium")
        row = {"variant": name, "seed": seed, "final": evaluate(final, "CartPole-v1", episodes=50, seed=10**6 + seed)[0],
               "best": evaluate(best, "CartPole-v1", episodes=50, seed=10**6 + seed)[0],
               "best_step": a.summary.get("best_step"), "wall": round(time.perf_counter() - t, 1)}
        print(json.dumps(row), flush=True)
