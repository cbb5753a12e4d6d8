"""DQN on CartPole-v1, side by side with Stable-Baselines3's zoo-tuned DQN, in one process.

    python tests/benchmarks/bench_dqn_cartpole.py [--seeds 0-4] [--sb3-seeds 0-4] [--out FILE]

Ours: the CartPole-v1 preset, up to 100k environment steps, a deterministic evaluation of
20 episodes every 5k steps, stopping once the mean reaches 475 (`steps_to_threshold`).
SB3: rl-baselines3-zoo's CartPole-v1 DQN hyperparameters for the zoo's 50k-step budget,
then the same deterministic 20-episode evaluation, and the same periodic evaluation through
SB3's EvalCallback so both are judged on "reached 475 within the budget".
Wall times are training time only (evaluation excluded) on this machine, in this run.
Both run with one torch thread (`--threads`): on a 2-core machine a second OpenMP thread
makes tiny-tensor work several times slower as soon as anything else runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time

import torch

from agents.cli import parse_seeds


def ours(seed: int, run_root: str, backend: str) -> dict:
    from agents import DQN

    agent = DQN("CartPole-v1", seed=seed, backend=backend)
    agent.learn(100_000, run_dir=f"{run_root}/ours_{seed}", progress=False, eval_every=5_000,
                eval_episodes=20, stop_at_return=475)
    s = agent.summary
    return {"seed": seed, "reached": "steps_to_threshold" in s, "steps": s.get("steps_to_threshold"),
            "wall_time": s.get("wall_time_to_threshold", s["wall_time"]), "final_mean_return": s["final_mean_return"]}


def sb3(seed: int) -> dict:
    import gymnasium as gym
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    class Track(BaseCallback):
        """Deterministic 20-episode evaluation every 5k steps, its time excluded from the wall time."""

        def __init__(self):
            super().__init__()
            self.eval_env = gym.make("CartPole-v1")
            self.eval_seconds, self.reached = 0.0, None

        def _on_step(self) -> bool:
            if self.num_timesteps % 5_000 == 0 and self.reached is None:
                t0 = time.perf_counter()
                mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=20, deterministic=True)
                self.eval_seconds += time.perf_counter() - t0
                if mean >= 475:
                    self.reached = (self.num_timesteps, time.perf_counter() - self.start - self.eval_seconds)
            return True

    # rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
    model = SB3DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                   learning_starts=1_000, gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                   exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]),
                   seed=seed, verbose=0)
    cb = Track()
    cb.start = time.perf_counter()
    model.learn(50_000, callback=cb)
    wall = time.perf_counter() - cb.start - cb.eval_seconds
    mean, _ = evaluate_policy(model, gym.make("CartPole-v1"), n_eval_episodes=20, deterministic=True)
    return {"seed": seed, "reached": cb.reached is not None, "steps": cb.reached and cb.reached[0],
            "wall_time_to_threshold": cb.reached and cb.reached[1], "wall_time": wall, "final_mean_return": mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=parse_seeds, default="0-4", help="e.g. 0-4 or 0,3,7-9")
    parser.add_argument("--sb3-seeds", type=parse_seeds, default="0-4")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both libraries")
    parser.add_argument("--backend", default="gymnasium", choices=("gymnasium", "torch"),
                        help="our CartPole: gymnasium's (the recorded figures) or the torch-native one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = tempfile.mkdtemp(prefix="bench_dqn_")
    rows = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"torch {torch.__version__}, python {platform.python_version()}", "ours": [], "sb3": []}
    for seed in args.sb3_seeds:
        rows["sb3"].append(sb3(seed))
        print("sb3 ", json.dumps(rows["sb3"][-1]), flush=True)
    for seed in args.seeds:
        rows["ours"].append(ours(seed, root, args.backend))
        print("ours", json.dumps(rows["ours"][-1]), flush=True)
    for name in ("ours", "sb3"):
        runs = rows[name]
        reached = [r for r in runs if r["reached"]]
        key = "wall_time" if name == "ours" else "wall_time_to_threshold"
        med = statistics.median(r[key] for r in reached) if reached else None
        print(f"{name}: reached 475 in {len(reached)}/{len(runs)} seeds; median wall time to 475: "
              f"{med if med is None else round(med, 1)} s; median full-budget wall time: "
              f"{round(statistics.median(r['wall_time'] for r in runs), 1)} s; final evaluations: "
              f"{[round(r['final_mean_return'], 1) for r in runs]}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
