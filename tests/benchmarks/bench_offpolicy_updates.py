"""Gradient steps per second of our SAC and TD3 against Stable-Baselines3's, same networks, batch and machine.

    python tests/benchmarks/bench_offpolicy_updates.py [--algos sac,td3] [--rounds 5] [--steps 200] [--out FILE.json]

Off-policy training with one gradient step per environment step is bound by its updates, so this
times the update alone: each library first collects 2,000 steps of Pendulum-v1 (SB3's defaults: SAC
256x256, TD3 400x300, batch 256), then runs `--steps` gradient steps per round, the two libraries
alternating round by round; reported are the best round of each and their ratio. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from agents.bench import machine


def ours(algo: str):
    from agents import AGENTS

    agent = AGENTS[algo]("Pendulum-v1", seed=0, checkpoint_interval=0, learning_starts=1_000, gradient_steps=1)
    agent.learn(2_000, run_dir=Path("runs") / "bench_updates" / f"{algo}_{time.time_ns()}", progress=False)
    config = agent.config

    def run(steps: int) -> None:
        config.gradient_steps = steps
        agent._train()
    return run


def sb3(algo: str):
    import stable_baselines3 as sb3

    model = getattr(sb3, algo.upper())("MlpPolicy", "Pendulum-v1", seed=0, verbose=0, learning_starts=1_000)
    model.learn(2_000)
    return lambda steps: model.train(gradient_steps=steps, batch_size=256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="sac,td3")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {"machine": machine(), "time": time.strftime("%Y%m%d-%H%M%S"), "steps_per_round": args.steps, "algos": {}}
    for algo in args.algos.split(","):
        sides = {"ours": ours(algo), "sb3": sb3(algo)}
        for update in sides.values():
            update(10)  # warm-up: allocator, optimiser state
        rounds: dict[str, list[float]] = {"ours": [], "sb3": []}
        for _ in range(args.rounds):
            for side, update in sides.items():
                started = time.perf_counter()
                update(args.steps)
                rounds[side].append(args.steps / (time.perf_counter() - started))
        best = {side: max(r) for side, r in rounds.items()}
        results["algos"][algo] = {"gradient_steps_per_s": best, "rounds": rounds, "ratio": best["ours"] / best["sb3"]}
        print(json.dumps({"algo": algo, **best, "ratio": round(best["ours"] / best["sb3"], 3)}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
