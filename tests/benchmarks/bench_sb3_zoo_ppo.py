"""Stable-Baselines3's own PPO with rl-baselines3-zoo's hyperparameters, on this machine's gymnasium: the
reference for "PPO at the zoo's budgets" (is a gap to the zoo's table ours, or the table's?).

    python tests/benchmarks/bench_sb3_zoo_ppo.py LunarLander-v3 [--seed 0] [--eval-every 100000]

Trains for the zoo's budget and evaluates greedily over 20 episodes every `--eval-every` steps, as
`bench_pg_solve.py` does for ours (without stopping at a target), then the final model over 100
episodes, as `rl eval RUN_DIR --episodes 100 --seed 123` does for ours. Needs the `bench` extra (SB3), and
`box2d` for LunarLander. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from agents.returns import GOALS

# hyperparams/ppo.yml of rl-baselines3-zoo, as `rl bench --returns` trains it.
ZOO = {env: {"n_envs": GOALS["ppo", env].sb3.n_envs, "n_timesteps": GOALS["ppo", env].sb3.steps,
             "normalize": GOALS["ppo", env].sb3.normalize, "kwargs": GOALS["ppo", env].sb3.kwargs}
       for env in ("LunarLander-v3", "Acrobot-v1")}


def main() -> None:
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id", choices=sorted(ZOO))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=None, help="default: the zoo's budget")
    args = parser.parse_args()
    torch.set_num_threads(1)
    zoo = ZOO[args.env_id]
    env = make_vec_env(args.env_id, n_envs=zoo["n_envs"], seed=args.seed)
    if zoo["normalize"]:
        env = VecNormalize(env, gamma=zoo["kwargs"]["gamma"])
    model = PPO("MlpPolicy", env, seed=args.seed, verbose=0, **zoo["kwargs"])
    started = time.perf_counter()
    evals = []

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = args.eval_every
            self.eval_seconds = 0.0

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                self.next += args.eval_every
                t = time.perf_counter()
                eval_env = make_vec_env(args.env_id, n_envs=1, seed=10_000 + len(evals))
                if zoo["normalize"]:  # frozen copies of the training statistics
                    eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
                    eval_env.obs_rms = env.obs_rms.copy()
                mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True, warn=False)
                self.eval_seconds += time.perf_counter() - t
                evals.append({"steps": self.num_timesteps, "mean_return": round(float(mean), 1),
                              "std_return": round(float(std), 1)})
                print(json.dumps(evals[-1]), flush=True)
            return True

    callback = Evaluate()
    model.learn(args.steps or zoo["n_timesteps"], callback=callback)
    wall = time.perf_counter() - started - callback.eval_seconds
    final_env = make_vec_env(args.env_id, n_envs=1, seed=123)
    if zoo["normalize"]:
        final_env = VecNormalize(final_env, training=False, norm_reward=False)
        final_env.obs_rms = env.obs_rms.copy()
    mean, std = evaluate_policy(model, final_env, n_eval_episodes=100, deterministic=True, warn=False)
    print(json.dumps({"env_id": args.env_id, "seed": args.seed, "gymnasium": gym.__version__, "wall_time": round(wall, 1),
                      "best": max(e["mean_return"] for e in evals), "final": evals[-1]["mean_return"],
                      "final_100_episodes": round(float(mean), 1), "final_100_std": round(float(std), 1)}))


if __name__ == "__main__":
    main()
