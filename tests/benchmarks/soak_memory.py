"""Soak: train one agent for a long while and record its resident memory, to show it stays flat once
the replay buffer is full (a leak would grow it step after step).

    python tests/benchmarks/soak_memory.py --algo dqn --minutes 30 --out tests/benchmarks/results/soak_dqn.json

Trains in chunks of `--chunk` steps, each a `learn` call of its own (so checkpoints, TensorBoard
writers and evaluation environments come and go as in a long run that is resumed), and samples
the process's resident set size after each chunk. The verdict compares the mean RSS of the last
fifth of the samples with that of the samples right after the buffer filled (PPO: after the
first fifth).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import psutil
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=("dqn", "ppo"), required=True)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--chunk", type=int, default=20_000, help="environment steps per learn call")
    parser.add_argument("--buffer-size", type=int, default=50_000, help="DQN's replay capacity")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from agents import DQN, PPO

    settings = {"seed": 0, "checkpoint_interval": 50_000}
    agent = (DQN(args.env, buffer_size=args.buffer_size, **settings) if args.algo == "dqn"
             else PPO(args.env, **settings))
    process, samples, start = psutil.Process(), [], time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() - start < args.minutes * 60:
            agent.learn(agent.global_step + args.chunk, run_dir=Path(tmp) / "run", progress=False)
            full = args.algo == "ppo" or len(agent.buffer) >= agent.buffer.capacity
            samples.append({"seconds": round(time.monotonic() - start, 1), "steps": agent.global_step,
                            "rss_mb": round(process.memory_info().rss / 2**20, 1), "buffer_full": bool(full)})
            print(samples[-1], flush=True)
    settled = [s for s in samples if s["buffer_full"]]
    settled = settled[max(len(samples) // 5, 1):] if args.algo == "ppo" else settled
    head, tail = settled[: max(len(settled) // 5, 1)], settled[-max(len(settled) // 5, 1):]
    mean = lambda rows: sum(r["rss_mb"] for r in rows) / len(rows)  # noqa: E731
    result = {"algo": args.algo, "env": args.env, "minutes": args.minutes, "chunk": args.chunk,
              "buffer_size": args.buffer_size if args.algo == "dqn" else None,
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "rss_mb_once_settled": round(mean(head), 1) if head else None,
              "rss_mb_at_the_end": round(mean(tail), 1) if tail else None, "samples": samples}
    try:
        result["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                             if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print({k: v for k, v in result.items() if k != "samples"})


if __name__ == "__main__":
    main()
