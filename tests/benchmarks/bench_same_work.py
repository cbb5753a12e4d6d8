"""Same work, whole process: our `rl train` against a Stable-Baselines3 script with the zoo's hyperparameters
on both sides, gymnasium's CartPole-v1, the same steps, one torch thread each.

    python tests/benchmarks/bench_same_work.py [--rounds 5] [--algos ppo,dqn] [--out FILE.json]

- `ppo`: the zoo's CartPole-v1 PPO (8 copies, 32 steps, 20 epochs of 256-row minibatches, linear step-size and
  clip schedules), 100k steps. Our CartPole-v1 preset is that recipe.
- `dqn`: the zoo's CartPole-v1 DQN (128 gradient steps every 256 environment steps, constant step size 2.3e-3),
  its 50k-step budget. Our preset departs from it (a lower, annealed step size), so the zoo's values are passed.

Each round runs every command once as its own process (import, environment, training, saving the model), the
two libraries alternating so that a drift in the machine's speed reaches both; wall time is measured around
the process. Reported: the median of each side and the median of the per-round ratios, with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agents.bench import machine
from agents.returns import GOALS

SB3_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
import stable_baselines3 as sb3
from stable_baselines3.common.env_util import make_vec_env
from agents.returns import GOALS, sb3_kwargs
algo, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
recipe = GOALS[algo, "CartPole-v1"].sb3
model = getattr(sb3, recipe.algo)("MlpPolicy", make_vec_env("CartPole-v1", n_envs=recipe.n_envs, seed=seed), seed=seed,
                                  verbose=0, **sb3_kwargs(recipe))
model.learn(recipe.steps)
model.save(out)
"""

# Our flags for the zoo's recipe where the preset departs from it.
OURS_FLAGS = {"ppo": [], "dqn": ["--learning-rate", "2.3e-3", "--anneal-lr", "false", "--exploration-fraction", "0.16"]}


def commands(algo: str, seed: int, tmp: Path) -> dict[str, list[str]]:
    steps = GOALS[algo, "CartPole-v1"].sb3.steps
    return {"ours": [sys.executable, "-m", "agents.cli", "train", algo, "CartPole-v1", "--backend", "gymnasium",
                     "--seed", str(seed), "--total-steps", str(steps), "--threads", "1", "--no-progress",
                     "--run-dir", str(tmp / f"ours_{algo}_{seed}_{time.monotonic_ns()}"), *OURS_FLAGS[algo]],
            "sb3": [sys.executable, "-c", SB3_SCRIPT, algo, str(tmp / f"sb3_{algo}_{seed}"), str(seed)]}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--algos", default="ppo,dqn")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {"machine": machine(), "time": time.strftime("%Y%m%d-%H%M%S"), "rounds": args.rounds, "algos": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for algo in args.algos.split(","):
            rows = []
            for r in range(args.rounds):
                cmds = commands(algo, r, Path(tmp))
                order = ("ours", "sb3") if r % 2 == 0 else ("sb3", "ours")
                row = {"seed": r, **{side: round(timed(cmds[side]), 2) for side in order}}
                row["ratio"] = round(row["ours"] / row["sb3"], 3)
                rows.append(row)
                print(json.dumps({"algo": algo, **row}), flush=True)
            results["algos"][algo] = {
                "steps": GOALS[algo, "CartPole-v1"].sb3.steps, "rounds": rows,
                "ours_median_s": statistics.median(r["ours"] for r in rows),
                "sb3_median_s": statistics.median(r["sb3"] for r in rows),
                "ratio_median": statistics.median(r["ratio"] for r in rows),
                "commands": {side: " ".join(c if " " not in c else "<script>" for c in cmd) for side, cmd in cmds.items()}}
            print(json.dumps({k: v for k, v in results["algos"][algo].items() if k != "rounds"}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
