"""How reliably a policy-gradient agent solves an environment within a step budget.

    python tests/benchmarks/bench_pg_solve.py a2c CartPole-v1 [--seeds 0-4] [--budget 500000] [--target 475]
        [--backend torch] [--device cuda] [--hp '{"num_envs": 4096, "n_steps": 16}']

Each seed trains the agent's preset with a deterministic 20-episode evaluation every
`--eval-every` steps and stops once the mean reaches `--target`. Wall times are training
time only (evaluation excluded), one torch thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch


def main() -> None:
    from agents import AGENTS
    from agents.cli import parse_seeds
    from rlcore import evaluate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("algo", choices=sorted(AGENTS))
    parser.add_argument("env_id")
    parser.add_argument("--seeds", type=parse_seeds, default="0-4", help="e.g. 0-4 or 0,3,7-9")
    parser.add_argument("--budget", type=int, default=500_000)
    parser.add_argument("--target", type=float, default=475)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--backend", default="gymnasium", choices=("gymnasium", "torch", "auto"),
                        help="environment implementation (the recorded figures used gymnasium's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hp", type=json.loads, default={}, help="hyperparameters over the preset, as JSON")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = tempfile.mkdtemp(prefix=f"bench_{args.algo}_")
    rows = []
    for seed in args.seeds:
        agent = AGENTS[args.algo](args.env_id, seed=seed, backend=args.backend, device=args.device,
                                   **args.hp)
        agent.learn(args.budget, run_dir=f"{root}/{seed}", progress=False, eval_every=args.eval_every,
                    stop_at_return=args.target)
        s = agent.summary
        rows.append({"seed": seed, "reached": "steps_to_threshold" in s, "steps": s.get("steps_to_threshold"),
                     "wall_time": round(s.get("wall_time_to_threshold", s["wall_time"]), 2),
                     "final_mean_return": s["final_mean_return"]})
        if args.backend != "gymnasium":  # does the policy transfer to gymnasium's own environment?
            agent.config.backend = "gymnasium"  # evaluation environments are built from the config
            rows[-1]["gymnasium_eval_return"] = evaluate(agent, args.env_id, episodes=20, seed=10_000)[0]
        print(json.dumps(rows[-1]), flush=True)
    reached = [r for r in rows if r["reached"]]
    med = statistics.median(r["wall_time"] for r in reached) if reached else None
    print(f"{args.algo} {args.env_id}: reached {args.target} in {len(reached)}/{len(rows)} seeds within {args.budget} "
          f"steps; steps {[r['steps'] for r in rows]}; median wall time to target {med} s")


if __name__ == "__main__":
    main()
