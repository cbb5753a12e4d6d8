"""`rl bench`: the speed comparisons of this project, side by side on the current machine.

Three parts, each measured in this one process against its reference in the same run:

- `env`: torch-native CartPole steps per second at many copies against gymnasium's
  `SyncVectorEnv` (random actions drawn before the clock starts; best of `repeats`).
- `ppo`: our PPO on the torch-native CartPole, wall time to a greedy 20-episode mean of 475
  (evaluation excluded) per seed, against Stable-Baselines3's zoo-tuned PPO on gymnasium's
  CartPole for its 100k-step budget; each of our final models is also scored on gymnasium's.
  The two sides' seeds alternate, so a drift in the machine's speed reaches both.
- `seeds`: wall time of 16 PPO seeds trained at once against one seed, same steps per seed.
- `sps`: PPO training throughput (environment steps per second, collection and update) on the
  torch-native CartPole at thousands of copies: eager; with the update's minibatch step replayed
  from a CUDA graph (`cuda_graph=True`, PPO's default on a GPU); and with the acting step compiled
  too (`compile=True`: a CUDA graph on a GPU). Meant for `--device cuda`.

Writes `results.md`, `results.json` and `plot.png` (matplotlib, the `bench` extra) to
`runs/bench/<time>/` with the machine description: CPU model, cores, GPU, torch version.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

PARTS = ("env", "ppo", "seeds", "sps")
QUICK = {"torch_steps": 50, "gym_steps": 50, "repeats": 1, "ppo_steps": 2_048, "sb3_steps": 1_024, "seeds": 2,
         "seed_steps": 512, "sps_envs": (64,), "sps_iterations": 2}
FULL = {"torch_steps": 2_000, "gym_steps": 1_000, "repeats": 3, "ppo_steps": 100_000, "sb3_steps": 100_000,
        "seeds": 16, "seed_steps": 50_000, "sps_envs": (4_096, 16_384, 65_536), "sps_iterations": 20}
# The `sps` part's PPO: 16 steps per copy, 4 epochs of 4 minibatches, whatever the number of copies.
SPS_PPO = {"n_steps": 16, "n_epochs": 4, "minibatches": 4}
# The `ppo` part's settings over the CartPole-v1 preset (the zoo's), chosen for wall time to 475 on the
# torch-native CartPole: there acting is nearly free and the zoo's 20 epochs per 256 steps dominate. A sweep
# over 15 seeds (docs/benchmarks.md) gave a median of 14k steps and about 2 s, against the preset's 25k steps and 7 to 8 s.
FAST_CARTPOLE_PPO = {"n_epochs": 5, "learning_rate": 3e-3, "gamma": 0.99, "gae_lambda": 0.95}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    fields = {}
    for line in info:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    if "model name" in fields:
        flags = fields.get("flags", "").split()
        cpu = fields["model name"] + (" (AVX-512)" if "avx512f" in flags else " (AVX2)" if "avx2" in flags else "")
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__, "gymnasium": gym.__version__, "python": platform.python_version()}


def _torch_sps(num_envs: int, steps: int, device: str) -> float:
    from envs.classic import CartPoleVecEnv

    env = CartPoleVecEnv(num_envs=num_envs, device=device, seed=0)
    env.reset()
    actions = torch.randint(0, 2, (steps, num_envs), generator=torch.Generator(device).manual_seed(0), device=device)
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


def _gym_sps(num_envs: int, steps: int) -> float:
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


def env_throughput(budget: dict[str, int], device: str, torch_envs: int = 4096, gym_envs: int = 64) -> dict[str, Any]:
    """gymnasium's SyncVectorEnv steps its copies in a Python loop, so its rate barely depends on the
    number of copies (docs/performance.md); 64 is a fair reference."""
    gym_sps = max(_gym_sps(gym_envs, budget["gym_steps"]) for _ in range(budget["repeats"]))
    torch_sps = max(_torch_sps(torch_envs, budget["torch_steps"], device) for _ in range(budget["repeats"]))
    return {"gymnasium": {"copies": gym_envs, "steps_per_s": gym_sps},
            "torch": {"copies": torch_envs, "device": device, "steps_per_s": torch_sps}, "ratio": torch_sps / gym_sps}


def sb3_ppo_cartpole(seed: int, total_steps: int = 100_000) -> dict[str, Any]:
    """rl-baselines3-zoo's CartPole-v1 PPO (hyperparams/ppo.yml) for `total_steps`, then the same greedy
    20-episode evaluation; wall time is training only."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from agents.returns import GOALS, sb3_kwargs

    recipe = GOALS["ppo", "CartPole-v1"].sb3
    model = SB3PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=recipe.n_envs, seed=seed), seed=seed, verbose=0,
                   **sb3_kwargs(recipe))
    start = time.perf_counter()
    model.learn(total_steps)
    wall = time.perf_counter() - start
    mean, _ = evaluate_policy(model, gym.make("CartPole-v1"), n_eval_episodes=20, deterministic=True, warn=False)
    return {"seed": seed, "wall_time": wall, "final_mean_return": float(mean)}


def ours_ppo_cartpole(seed: int, total_steps: int, run_root: Path, backend: str = "torch",
                      eval_every: int = 2_048, hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our CartPole-v1 preset, with `hyperparameters` over it, until a greedy 20-episode mean of 475
    (or `total_steps`)."""
    from agents import PPO
    from rlcore import evaluate

    agent = PPO("CartPole-v1", seed=seed, backend=backend, checkpoint_interval=0, **(hyperparameters or {}))
    agent.learn(total_steps, run_dir=run_root / f"ppo_{backend}_{seed}", progress=False, eval_every=eval_every,
                eval_episodes=20, stop_at_return=475)
    s = agent.summary
    row = {"seed": seed, "reached": "steps_to_threshold" in s, "steps": s.get("steps_to_threshold"),
           "wall_time": s.get("wall_time_to_threshold", s["wall_time"]), "final_mean_return": s["final_mean_return"]}
    if backend != "gymnasium":  # does the policy transfer to gymnasium's own CartPole?
        agent.config.backend = "gymnasium"  # evaluation environments are built from the config
        row["gymnasium_eval_return"] = evaluate(agent, "CartPole-v1", episodes=20, seed=10_000)[0]
    return row


def ppo_cartpole(budget: dict[str, int], seeds: list[int], sb3_seeds: list[int], run_root: Path) -> dict[str, Any]:
    eval_every = min(2_048, budget["ppo_steps"] // 2)
    ours: list[dict[str, Any]] = []
    sb3: list[dict[str, Any]] = []
    # Interleaved (ours 0, SB3 0, ours 1, ...): this machine's speed drifts by a third over minutes, and
    # one side run wholly before the other would take the drift into the ratio.
    for i in range(max(len(seeds), len(sb3_seeds))):
        if i < len(seeds):
            ours.append(ours_ppo_cartpole(seeds[i], budget["ppo_steps"], run_root, eval_every=eval_every,
                                          hyperparameters=FAST_CARTPOLE_PPO))
        if i < len(sb3_seeds):
            sb3.append(sb3_ppo_cartpole(sb3_seeds[i], budget["sb3_steps"]))
    reached = [r["wall_time"] for r in ours if r["reached"]]
    sb3_median = statistics.median(r["wall_time"] for r in sb3)
    ours_median = statistics.median(reached) if reached else None
    return {"ours": ours, "sb3": sb3, "eval_every": eval_every,
            "sb3_median_wall_time": sb3_median, "ours_median_wall_time_to_475": ours_median,
            "reached": f"{len(reached)}/{len(ours)}", "ratio": sb3_median / ours_median if ours_median else None}


def many_seeds(budget: dict[str, int], run_root: Path, device: str = "cpu") -> dict[str, Any]:
    from agents import PPO

    walls = {}
    for n in (1, budget["seeds"]):
        agent = PPO("CartPole-v1", seeds=list(range(n)) if n > 1 else None, checkpoint_interval=0, device=device)
        start = time.perf_counter()
        agent.learn(budget["seed_steps"], run_dir=run_root / f"seeds_{n}", progress=False)
        walls[n] = time.perf_counter() - start  # includes writing each seed's checkpoint and model
    return {"device": device, "steps_per_seed": budget["seed_steps"], "one_seed_wall_time": walls[1],
            "many": budget["seeds"], "many_wall_time": walls[budget["seeds"]],
            "ratio": walls[budget["seeds"]] / walls[1]}


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def sps_variants(device: str) -> dict[str, dict[str, bool]]:
    """The PPO settings the `sps` part compares (the CUDA-graph update exists only on CUDA)."""
    if torch.device(device).type != "cuda":
        return {"eager": {"compile": False}, "compiled acting step": {"compile": True}}
    return {"eager": {"cuda_graph": False, "compile": False}, "CUDA-graph update": {"cuda_graph": True, "compile": False},
            "CUDA-graph update + compiled acting step": {"cuda_graph": True, "compile": True}}


def ppo_throughput(budget: dict[str, Any], device: str) -> dict[str, Any]:
    """PPO's steps per second at each number of copies for each of `sps_variants`, after two
    warm-up iterations (compilation and CUDA-graph capture happen there). Collection and update
    are timed apart, with one device sync between them, the only one per iteration."""
    from agents import PPO

    rows = []
    for num_envs in budget["sps_envs"]:
        for variant, settings in sps_variants(device).items():
            rollout = num_envs * SPS_PPO["n_steps"]
            agent = PPO("CartPole-v1", backend="torch", device=device, num_envs=num_envs, n_steps=SPS_PPO["n_steps"],
                        n_epochs=SPS_PPO["n_epochs"], batch_size=rollout // SPS_PPO["minibatches"],
                        checkpoint_interval=0, **settings)
            agent.total_steps = 10**15  # the learning-rate schedule reads it
            agent.obs, _ = agent.env.reset(seed=0)
            seconds = {"collect": 0.0, "update": 0.0}
            for i in range(2 + budget["sps_iterations"]):
                _sync(device)
                start = time.perf_counter()
                agent.start_round(agent.collect_round(agent.policy, agent.buffer, agent.obs))
                _sync(device)
                middle = time.perf_counter()
                agent._update(agent.buffer, agent.global_step, None)
                _sync(device)
                if i >= 2:
                    seconds["collect"] += middle - start
                    seconds["update"] += time.perf_counter() - middle
            steps = budget["sps_iterations"] * rollout
            rows.append({"copies": num_envs, "variant": variant, "steps": steps,
                         "steps_per_s": steps / (seconds["collect"] + seconds["update"]),
                         "collect_steps_per_s": steps / seconds["collect"], "update_seconds_share":
                         seconds["update"] / (seconds["collect"] + seconds["update"])})
    return {"device": device, "ppo": SPS_PPO, "rows": rows}


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"# rl bench ({results['time']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; torch {m['torch']} "
             f"({m['torch_threads']} thread(s)), gymnasium {m['gymnasium']}, Python {m['python']}.", ""]
    if "env" in results:
        e = results["env"]
        lines += ["## Environment throughput (CartPole-v1, random actions)", "",
                  "| implementation | copies | env steps/s | ratio |", "|---|---:|---:|---:|",
                  f"| gymnasium SyncVectorEnv | {e['gymnasium']['copies']} | {e['gymnasium']['steps_per_s']:,.0f} | 1.0x |",
                  f"| torch-native ({e['torch']['device']}) | {e['torch']['copies']} | {e['torch']['steps_per_s']:,.0f} | "
                  f"{e['ratio']:,.1f}x |", ""]
    if "ppo" in results:
        p = results["ppo"]
        ours = ", ".join(f"{r['wall_time']:.1f}" + ("" if r["reached"] else " (not reached)") for r in p["ours"])
        ratio = f"1/{p['ratio']:.1f}" if p["ratio"] else "n/a"
        sb3 = ", ".join(f"{r['wall_time']:.1f}" for r in p["sb3"])
        lines += ["## PPO on CartPole-v1: ours (torch-native) to 475 against SB3's zoo PPO budget", "",
                  "| | seeds | wall time (s) | median |", "|---|---|---|---:|",
                  f"| ours, to 475 (reached {p['reached']}) | {len(p['ours'])} | {ours} | "
                  f"{p['ours_median_wall_time_to_475'] or float('nan'):.1f} |",
                  f"| SB3 zoo PPO, whole budget | {len(p['sb3'])} | "
                  f"{sb3} | {p['sb3_median_wall_time']:.1f} |", "",
                  f"Ratio of medians: {ratio}. Ours: the preset with {FAST_CARTPOLE_PPO} over it, evaluated "
                  f"every {p['eval_every']} steps. Our final models on gymnasium's CartPole-v1: "
                  f"{[round(r.get('gymnasium_eval_return', float('nan')), 1) for r in p['ours']]}.", ""]
    if "seeds" in results:
        s = results["seeds"]
        lines += [f"## Many seeds at once (PPO, CartPole-v1 preset, torch-native, {s.get('device', 'cpu')})", "",
                  "| | wall time (s) |", "|---|---:|", f"| 1 seed | {s['one_seed_wall_time']:.1f} |",
                  f"| {s['many']} seeds at once | {s['many_wall_time']:.1f} |", "",
                  f"{s['many']} seeds took {s['ratio']:.2f}x the wall time of one ({s['steps_per_seed']:,} steps per seed).",
                  ""]
    if "sps" in results:
        r = results["sps"]
        lines += [f"## PPO training throughput (CartPole-v1, torch-native, {r['device']})", "",
                  f"{r['ppo']['n_steps']} steps per copy, {r['ppo']['n_epochs']} epochs of {r['ppo']['minibatches']} "
                  "minibatches per update.", "",
                  "| copies | PPO | env steps/s (collect + update) | collect only | update share |",
                  "|---:|---|---:|---:|---:|"]
        lines += [f"| {row['copies']:,} | {row['variant']} | {row['steps_per_s']:,.0f} | "
                  f"{row['collect_steps_per_s']:,.0f} | {row['update_seconds_share']:.0%} |" for row in r["rows"]]
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Bar charts of each part; None when matplotlib is not installed (`pip install -e ".[bench]"`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    parts = [p for p in PARTS if p in results]
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 4), squeeze=False)
    for ax, part in zip(axes[0], parts):
        r = results[part]
        if part == "env":
            ax.bar(["gymnasium Sync", "torch-native"], [r["gymnasium"]["steps_per_s"], r["torch"]["steps_per_s"]])
            ax.set_yscale("log")
            ax.set_title(f"CartPole env steps/s ({r['ratio']:.0f}x)")
        elif part == "ppo":
            ax.bar(["ours: to 475", "SB3: budget"], [r["ours_median_wall_time_to_475"] or 0, r["sb3_median_wall_time"]])
            ax.set_ylabel("median wall time (s)")
            ax.set_title("PPO CartPole-v1")
        elif part == "sps":
            for variant in dict.fromkeys(row["variant"] for row in r["rows"]):
                rows = [row for row in r["rows"] if row["variant"] == variant]
                ax.plot([row["copies"] for row in rows], [row["steps_per_s"] for row in rows], marker="o", label=variant)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("copies")
            ax.legend()
            ax.set_title(f"PPO CartPole steps/s ({r['device']})")
        else:
            ax.bar(["1 seed", f"{r['many']} seeds"], [r["one_seed_wall_time"], r["many_wall_time"]])
            ax.set_ylabel("wall time (s)")
            ax.set_title(f"PPO seeds at once ({r['ratio']:.1f}x)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(parts: tuple[str, ...], out: Path, quick: bool = False, seeds: list[int] | None = None,
        sb3_seeds: list[int] | None = None, device: str = "cpu") -> dict[str, Any]:
    """Run `parts`, write the report into a new directory under `out`, and return the results."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"Unknown bench part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}.")
    if "ppo" in parts:
        try:
            import stable_baselines3  # noqa: F401  (the reference must be there before anything runs)
        except ImportError as err:
            raise ValueError('rl bench ppo compares against Stable-Baselines3: pip install -e ".[bench]"') from err
    budget = QUICK if quick else FULL
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = out / stamp
    run_dir.mkdir(parents=True, exist_ok=False)
    results: dict[str, Any] = {"time": stamp, "quick": quick, "machine": machine()}
    if "env" in parts:
        results["env"] = env_throughput(budget, device)
    if "ppo" in parts:
        results["ppo"] = ppo_cartpole(budget, seeds if seeds is not None else ([0] if quick else list(range(5))),
                                      sb3_seeds if sb3_seeds is not None else ([0] if quick else list(range(3))),
                                      run_dir / "runs")
    if "seeds" in parts:
        results["seeds"] = many_seeds(budget, run_dir / "runs", device)
    if "sps" in parts:
        results["sps"] = ppo_throughput(budget, device)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    (run_dir / "results.md").write_text(report(results))
    results["plot"] = str(plot(results, run_dir / "plot.png"))
    results["dir"] = str(run_dir)
    return results
