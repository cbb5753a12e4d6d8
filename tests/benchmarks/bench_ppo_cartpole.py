"""PPO on CartPole-v1, side by side with Stable-Baselines3's zoo-tuned PPO, in one process.

    python tests/benchmarks/bench_ppo_cartpole.py [--backend gymnasium|torch] [--seeds 0-4] [--sb3-seeds 0-2]
        [--eval-every 10000] [--out FILE]

Ours: the CartPole-v1 preset (the zoo's hyperparameters), up to 100k environment steps, a
deterministic 20-episode evaluation every 10k steps, stopping once the mean reaches 475.
SB3: the zoo's CartPole-v1 PPO for its full 100k-step budget (the reference wall time the
issue compares against), then the same deterministic 20-episode evaluation.
Wall times are training time only (evaluation excluded); one torch thread for both (`--threads`).
`--backend torch` trains ours on the torch-native CartPole and also evaluates each final model
on gymnasium's CartPole-v1 (20 episodes), to show the policy transfers.
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


def parse_seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def ours(seed: int, run_root: str, backend: str, eval_every: int) -> dict:
    from agents import PPO
    from rlcore import evaluate

    agent = PPO("CartPole-v1", seed=seed, backend=backend)
    agent.learn(100_000, run_dir=f"{run_root}/ours_{seed}", progress=False, eval_every=eval_every,
                eval_episodes=20, stop_at_return=475)
    s = agent.summary
    row = {"seed": seed, "reached": "steps_to_threshold" in s, "steps": s.get("steps_to_threshold"),
           "wall_time": s.get("wall_time_to_threshold", s["wall_time"]), "final_mean_return": s["final_mean_return"]}
    if backend != "gymnasium":
        agent.config.backend = "gymnasium"  # evaluation environments are built from the config
        row["gymnasium_eval_return"] = evaluate(agent, "CartPole-v1", episodes=20, seed=10_000)[0]
    return row


def sb3(seed: int) -> dict:
    import gymnasium as gym
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    def linear(start: float):
        return lambda progress_remaining: progress_remaining * start

    # rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1
    model = SB3PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=seed), n_steps=32, batch_size=256,
                   gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=linear(0.001),
                   clip_range=linear(0.2), seed=seed, verbose=0)
    start = time.perf_counter()
    model.learn(100_000)
    wall = time.perf_counter() - start
    mean, _ = evaluate_policy(model, gym.make("CartPole-v1"), n_eval_episodes=20, deterministic=True)
    return {"seed": seed, "wall_time": wall, "final_mean_return": mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--sb3-seeds", default="0-2")
    parser.add_argument("--out", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="gymnasium", choices=("gymnasium", "torch"))
    parser.add_argument("--eval-every", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = tempfile.mkdtemp(prefix="bench_ppo_")
    rows = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), "
                       f"torch {torch.__version__}", "backend": args.backend, "ours": [], "sb3": []}
    for seed in parse_seeds(args.sb3_seeds):
        rows["sb3"].append(sb3(seed))
        print("sb3 ", json.dumps(rows["sb3"][-1]), flush=True)
    for seed in parse_seeds(args.seeds):
        rows["ours"].append(ours(seed, root, args.backend, args.eval_every))
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
