"""Environment steps per second: torch-native CartPole against gymnasium's SyncVectorEnv, in one run.

    python tests/benchmarks/bench_env_throughput.py [--torch-envs 4096] [--gym-envs 64] [--threads 1]

Both step CartPole-v1 with uniformly random actions drawn before the clock starts, so only
stepping (auto-resets included) is timed. gymnasium's SyncVectorEnv loops over its copies in
Python, so its steps per second barely depend on the number of copies; the torch env steps
all copies as one batch of tensor ops. Each side is timed ``--repeats`` times and the best
run is reported (the least disturbed by other load on the machine). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np
import torch

from envs.classic import CartPoleVecEnv


def time_torch(num_envs: int, steps: int, device: str) -> float:
    env = CartPoleVecEnv(num_envs=num_envs, device=device, seed=0)
    env.reset()
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(0, 2, (steps, num_envs), generator=generator, device=device)
    for t in range(min(steps, 50)):  # warm-up: allocator, kernels
        env.step(actions[t])
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for t in range(steps):
        env.step(actions[t])
    if device != "cpu":
        torch.cuda.synchronize()
    return steps * num_envs / (time.perf_counter() - start)


def time_gym(num_envs: int, steps: int) -> float:
    env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=(steps, num_envs))
    for t in range(min(steps, 50)):
        env.step(actions[t])
    start = time.perf_counter()
    for t in range(steps):
        env.step(actions[t])
    env.close()
    return steps * num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-envs", type=int, default=4096)
    parser.add_argument("--gym-envs", type=int, default=64)
    parser.add_argument("--torch-steps", type=int, default=2000)
    parser.add_argument("--gym-steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="device of the torch env")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gym_sps = max(time_gym(args.gym_envs, args.gym_steps) for _ in range(args.repeats))
    torch_sps = max(time_torch(args.torch_envs, args.torch_steps, args.device) for _ in range(args.repeats))

    print(f"CartPole-v1, random actions; {platform.processor() or platform.machine()}, torch {torch.__version__} "
          f"({args.threads} thread(s)), gymnasium {gym.__version__}; best of {args.repeats}\n")
    print("| implementation | copies | device | env steps/s | ratio |")
    print("|---|---:|---|---:|---:|")
    print(f"| gymnasium SyncVectorEnv | {args.gym_envs} | cpu | {gym_sps:,.0f} | 1.0x |")
    print(f"| envs.classic.CartPoleVecEnv | {args.torch_envs} | {args.device} | {torch_sps:,.0f} | "
          f"{torch_sps / gym_sps:,.1f}x |")


if __name__ == "__main__":
    main()
