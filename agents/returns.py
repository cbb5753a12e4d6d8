"""`rl bench --returns`: what each preset reaches on seeds nobody tuned on, beside Stable-Baselines3.

For every preset (or the ones asked for), seeds are drawn at random when the benchmark starts and
recorded in its results. Each seed trains our preset for its budget with a greedy evaluation every
`eval_every` steps, which keeps `best_model.pt`; where SB3 has the algorithm, SB3 trains with the
zoo's hyperparameters for the zoo's budget on the same seeds, its EvalCallback keeping its best
policy the same way. Then both libraries' final and best models are scored over the same number
of fresh episodes on gymnasium's implementation of the environment.

Per library and model (final, best): each seed's return, the fraction of seeds at the target, and
the interquartile mean with a 95% stratified-bootstrap interval from rliable (Agarwal et al. 2021).
Writes `results.json`, `results.md` and `returns.png` (IQM with intervals per preset, and the
in-training evaluations against steps) to `runs/bench/returns-<time>/`.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agents.bench import machine
from agents.presets import preset_for

TRAIN_EVAL_EPISODES = 20  # the in-training evaluations that choose the best model
SCORE_SEED = 1_000_000  # fresh episodes for the final scores: seeds no training evaluation used


def linear(start: float) -> Callable[[float], float]:
    """SB3's schedule form of the zoo's `lin_<start>`: from `start` down to 0 over training."""
    return lambda progress_remaining: progress_remaining * start


@dataclass(frozen=True)
class SB3Recipe:
    """One entry of rl-baselines3-zoo's hyperparams/<algo>.yml, as SB3 takes it."""

    algo: str
    steps: int
    kwargs: dict[str, Any]
    n_envs: int = 1
    normalize: bool = False


@dataclass(frozen=True)
class Goal:
    """What a preset must reach: `target` (the zoo table's return unless `source` says otherwise) at
    our budget `steps`, with evaluations every `eval_every` steps; `sb3` is the reference recipe."""

    target: float
    source: str
    steps: int
    eval_every: int
    sb3: SB3Recipe | None = None
    extra: str = field(default="", compare=False)  # the pyproject extra the environment needs, if any


EXTRA_MODULES = {"box2d": "Box2D", "mujoco": "mujoco"}  # what each extra installs, as imported


_DQN_ZOO_CLASSIC = {"learning_rate": 6.3e-4, "batch_size": 128, "buffer_size": 50_000, "learning_starts": 0,
                    "gamma": 0.99, "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1,
                    "exploration_fraction": 0.12, "exploration_final_eps": 0.1, "policy_kwargs": {"net_arch": [256, 256]}}

_TD3_ZOO_CLASSIC = {"gamma": 0.98, "buffer_size": 200_000, "learning_starts": 10_000, "action_noise": ("normal", 0.1),
                    "train_freq": 1, "gradient_steps": 1, "learning_rate": 1e-3, "policy_kwargs": {"net_arch": [400, 300]}}
_TD3_ZOO_MUJOCO = {"learning_starts": 10_000, "action_noise": ("normal", 0.1), "train_freq": 1, "gradient_steps": 1,
                   "learning_rate": 1e-3, "batch_size": 256, "policy_kwargs": {"net_arch": [400, 300]}}

GOALS: dict[tuple[str, str], Goal] = {
    ("dqn", "CartPole-v1"): Goal(475, "475 (solved; the zoo's table gives 500)", 100_000, 5_000, SB3Recipe(
        "DQN", 50_000, {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1_000,
                        "gamma": 0.99, "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
                        "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
                        "policy_kwargs": {"net_arch": [256, 256]}})),
    ("dqn", "Acrobot-v1"): Goal(-76.6, "the zoo's table", 100_000, 10_000, SB3Recipe("DQN", 100_000, _DQN_ZOO_CLASSIC)),
    ("dqn", "MountainCar-v0"): Goal(-100.8, "the zoo's table", 120_000, 10_000, SB3Recipe(
        "DQN", 120_000, {"learning_rate": 4e-3, "batch_size": 128, "buffer_size": 10_000, "learning_starts": 1_000,
                         "gamma": 0.98, "target_update_interval": 600, "train_freq": 16, "gradient_steps": 8,
                         "exploration_fraction": 0.2, "exploration_final_eps": 0.07,
                         "policy_kwargs": {"net_arch": [256, 256]}})),
    ("dqn", "LunarLander-v3"): Goal(154.4, "the zoo's table (LunarLander-v2)", 100_000, 10_000,
                                    SB3Recipe("DQN", 100_000, _DQN_ZOO_CLASSIC), extra="box2d"),
    ("ppo", "CartPole-v1"): Goal(500, "the zoo's table", 100_000, 5_000, SB3Recipe(
        "PPO", 100_000, {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                         "ent_coef": 0.0, "learning_rate": ("lin", 1e-3), "clip_range": ("lin", 0.2)}, n_envs=8)),
    ("ppo", "Acrobot-v1"): Goal(-73.5, "the zoo's table", 1_000_000, 50_000, SB3Recipe(
        "PPO", 1_000_000, {"n_steps": 256, "gae_lambda": 0.94, "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0},
        n_envs=16, normalize=True)),
    ("ppo", "Pendulum-v1"): Goal(-169.9, "the zoo's table (Pendulum-v0, 2M steps)", 1_000_000, 50_000, SB3Recipe(
        "PPO", 100_000, {"n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10, "ent_coef": 0.0,
                         "learning_rate": 1e-3, "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4},
        n_envs=4, normalize=True)),
    ("ppo", "LunarLander-v3"): Goal(242.1, "the zoo's table (LunarLander-v2)", 1_000_000, 50_000, SB3Recipe(
        "PPO", 1_000_000, {"n_steps": 1024, "batch_size": 64, "gae_lambda": 0.98, "gamma": 0.999, "n_epochs": 4,
                           "ent_coef": 0.01}, n_envs=16), extra="box2d"),
    ("ppo", "HalfCheetah-v5"): Goal(5819, "the zoo's table (HalfCheetah-v3)", 1_000_000, 100_000, SB3Recipe(
        "PPO", 1_000_000, {"batch_size": 64, "n_steps": 512, "gamma": 0.98, "learning_rate": 2.0633e-05,
                           "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                           "max_grad_norm": 0.8, "vf_coef": 0.58096,
                           "policy_kwargs": {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu",
                                             "net_arch": {"pi": [256, 256], "vf": [256, 256]}}},
        normalize=True), extra="mujoco"),
    ("a2c", "CartPole-v1"): Goal(500, "the zoo's table", 500_000, 10_000, SB3Recipe(
        "A2C", 500_000, {"ent_coef": 0.0}, n_envs=8)),
    ("reinforce", "CartPole-v1"): Goal(475, "475 (solved; SB3 and the zoo have no REINFORCE)", 500_000, 10_000),
    ("sac", "Pendulum-v1"): Goal(-157, "the zoo's table", 20_000, 2_000, SB3Recipe("SAC", 20_000, {"learning_rate": 1e-3})),
    ("sac", "MountainCarContinuous-v0"): Goal(94.7, "the zoo's table (with gSDE)", 50_000, 5_000, SB3Recipe(
        "SAC", 50_000, {"learning_rate": 3e-4, "buffer_size": 50_000, "batch_size": 512, "ent_coef": 0.1, "train_freq": 32,
                        "gradient_steps": 32, "gamma": 0.9999, "tau": 0.01, "learning_starts": 0, "use_sde": True,
                        "policy_kwargs": {"log_std_init": -3.67, "net_arch": [64, 64]}})),
    ("sac", "LunarLanderContinuous-v3"): Goal(260, "the zoo's table (LunarLanderContinuous-v2)", 500_000, 25_000, SB3Recipe(
        "SAC", 500_000, {"learning_rate": ("lin", 7.3e-4), "buffer_size": 1_000_000, "batch_size": 256, "ent_coef": "auto",
                         "gamma": 0.99, "tau": 0.01, "train_freq": 1, "gradient_steps": 1, "learning_starts": 10_000,
                         "policy_kwargs": {"net_arch": [400, 300]}}), extra="box2d"),
    ("sac", "HalfCheetah-v5"): Goal(9535, "the zoo's table (HalfCheetah-v3)", 1_000_000, 50_000,
                                    SB3Recipe("SAC", 1_000_000, {"learning_starts": 10_000}), extra="mujoco"),
    ("sac", "Hopper-v5"): Goal(2326, "the zoo's table (Hopper-v3)", 1_000_000, 50_000,
                               SB3Recipe("SAC", 1_000_000, {"learning_starts": 10_000}), extra="mujoco"),
    ("td3", "Pendulum-v1"): Goal(-152, "the zoo's table", 20_000, 2_000, SB3Recipe("TD3", 20_000, _TD3_ZOO_CLASSIC)),
    ("td3", "MountainCarContinuous-v0"): Goal(93.5, "the zoo's table", 300_000, 10_000, SB3Recipe(
        "TD3", 300_000, {"action_noise": ("ornstein-uhlenbeck", 0.5)})),
    ("td3", "LunarLanderContinuous-v3"): Goal(207, "the zoo's table (LunarLanderContinuous-v2)", 300_000, 25_000,
                                              SB3Recipe("TD3", 300_000, _TD3_ZOO_CLASSIC), extra="box2d"),
    ("td3", "HalfCheetah-v5"): Goal(9656, "the zoo's table (HalfCheetah-v3)", 1_000_000, 50_000,
                                    SB3Recipe("TD3", 1_000_000, _TD3_ZOO_MUJOCO), extra="mujoco"),
    ("td3", "Hopper-v5"): Goal(3606, "the zoo's table (Hopper-v3)", 1_000_000, 50_000,
                               SB3Recipe("TD3", 1_000_000, _TD3_ZOO_MUJOCO), extra="mujoco"),
}


def check_request(algo: str | None, env_id: str | None, seeds: int) -> list[tuple[str, str]]:
    """The presets asked for, or a one-line error that lists those with a goal."""
    if seeds < 1:
        raise ValueError(f"--seeds {seeds} is invalid: give a number of fresh seeds >= 1 (10 or more for a claim).")
    chosen = [key for key in GOALS if algo in (None, key[0]) and env_id in (None, key[1])]
    if not chosen:
        have = ", ".join(f"{a} {e}" for a, e in GOALS)
        raise ValueError(f"No returns benchmark for {algo or 'any agent'} on {env_id or 'any environment'}: "
                         f"the presets with one are {have}.")
    missing = sorted({GOALS[key].extra for key in chosen
                      if GOALS[key].extra and importlib.util.find_spec(EXTRA_MODULES[GOALS[key].extra]) is None})
    if missing:
        needing = [f"{a} {e}" for a, e in chosen if GOALS[a, e].extra in missing]
        raise ValueError(f"{', '.join(needing)} need{'s' if len(needing) == 1 else ''} the {' and '.join(missing)} "
                         f"extra: pip install -e \".[{','.join(missing)}]\" (or choose presets with --algo/--env).")
    return chosen


def fresh_seeds(n: int) -> list[int]:
    """`n` distinct seeds from the operating system's randomness, away from the small ones presets were tuned on."""
    return random.SystemRandom().sample(range(1_000, 2**31 - 1), n)


def iqm_interval(scores: list[float], reps: int = 20_000) -> tuple[float, float, float]:
    """Interquartile mean of per-seed scores and its 95% stratified-bootstrap interval (rliable)."""
    from rliable import library as rly
    from rliable import metrics

    runs = {"x": np.asarray(scores, dtype=float)[:, None]}  # [seeds, tasks=1]
    with warnings.catch_warnings():  # rliable hands arch a RandomState, which arch has deprecated for Generators
        warnings.simplefilter("ignore", FutureWarning)
        point, interval = rly.get_interval_estimates(runs, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps,
                                                     random_state=np.random.RandomState(0))
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def summarize(scores: list[float], target: float) -> dict[str, Any]:
    iqm, low, high = iqm_interval(scores)
    return {"scores": [round(s, 2) for s in scores], "at_target": sum(s >= target for s in scores),
            "seeds": len(scores), "iqm": round(iqm, 2), "iqm_ci95": [round(low, 2), round(high, 2)]}


# ----- one seed of each library ------------------------------------------------------------------
def train_ours(algo: str, env_id: str, goal: Goal, seed: int, run_dir: Path, episodes: int,
               overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our preset (with `overrides` over it) for `goal.steps`; its final and best models scored on gymnasium's
    environment."""
    from agents import AGENTS
    from rlcore.evaluation import evaluate

    agent = AGENTS[algo](env_id, seed=seed, checkpoint_interval=0, **(overrides or {}))
    agent.learn(goal.steps, run_dir=run_dir, progress=False, eval_every=goal.eval_every,
                eval_episodes=TRAIN_EVAL_EPISODES)
    row = {"seed": seed, "steps": agent.global_step, "wall_time": round(agent.summary["wall_time"], 1),
           "best_step": agent.summary.get("best_step"), "curve": eval_curve(run_dir)}
    for name, best in (("final", False), ("best", True)):
        with warnings.catch_warnings():  # scoring starts fresh episodes anyway
            warnings.filterwarnings("ignore", ".*restart their episodes on resume", RuntimeWarning)
            scored = AGENTS[algo].load(run_dir, best=best, backend="gymnasium")
        row[name] = round(evaluate(scored, env_id, episodes=episodes, seed=SCORE_SEED + seed)[0], 2)
    return row


def eval_curve(run_dir: Path) -> list[tuple[int, float]]:
    """The in-training evaluations (step, mean return) from the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, round(e.value, 2)) for e in events.Scalars("eval/mean_return")]


def sb3_kwargs(recipe: SB3Recipe, n_actions: int = 1) -> dict[str, Any]:
    """The recipe's keyword arguments as SB3 takes them: `lin_<x>` schedules as functions, activations as
    classes, `(kind, std)` action noise as SB3's noise object for `n_actions` dimensions."""
    import torch
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    kwargs = {k: linear(v[1]) if isinstance(v, tuple) and v[0] == "lin" else v for k, v in recipe.kwargs.items()}
    if "activation_fn" in kwargs.get("policy_kwargs", {}):
        kwargs["policy_kwargs"] = {**kwargs["policy_kwargs"], "activation_fn": torch.nn.ReLU}
    if "action_noise" in kwargs:
        kind, std = kwargs["action_noise"]
        noise = NormalActionNoise if kind == "normal" else OrnsteinUhlenbeckActionNoise
        kwargs["action_noise"] = noise(np.zeros(n_actions), std * np.ones(n_actions))
    return kwargs


def train_sb3(recipe: SB3Recipe, env_id: str, eval_every: int, seed: int, run_dir: Path, episodes: int) -> dict[str, Any]:
    """SB3 with the zoo's recipe; EvalCallback keeps the best policy (and its normalisation statistics,
    in memory); both scored on fresh episodes as ours are."""
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    env = make_vec_env(env_id, n_envs=recipe.n_envs, seed=seed)
    kwargs = sb3_kwargs(recipe, int(np.prod(env.action_space.shape or (1,))))
    eval_env = make_vec_env(env_id, n_envs=1, seed=10_000 + seed)
    if recipe.normalize:
        env = VecNormalize(env, gamma=kwargs.get("gamma", 0.99))
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
    model = getattr(sb3, recipe.algo)("MlpPolicy", env, seed=seed, verbose=0, **kwargs)

    class KeepBest(BaseCallback):
        def _on_step(self) -> bool:
            self.policy_state = copy.deepcopy(model.policy.state_dict())
            self.obs_rms = copy.deepcopy(env.obs_rms) if recipe.normalize else None
            return True

    keep = KeepBest()
    evals = EvalCallback(eval_env, callback_on_new_best=keep, n_eval_episodes=TRAIN_EVAL_EPISODES, log_path=str(run_dir),
                         eval_freq=max(eval_every // recipe.n_envs, 1), deterministic=True, verbose=0, warn=False)
    started = time.perf_counter()
    model.learn(recipe.steps, callback=evals)
    row = {"seed": seed, "steps": recipe.steps, "learn_seconds_with_evaluations": round(time.perf_counter() - started, 1),
           "curve": [(int(s), round(float(np.mean(r)), 2)) for s, r in zip(evals.evaluations_timesteps,
                                                                           evals.evaluations_results)]}

    def score(obs_rms: Any) -> float:
        fresh = make_vec_env(env_id, n_envs=1, seed=SCORE_SEED + seed)
        if recipe.normalize:
            fresh = VecNormalize(fresh, training=False, norm_reward=False)
            fresh.obs_rms = obs_rms
        return round(float(evaluate_policy(model, fresh, n_eval_episodes=episodes, deterministic=True, warn=False)[0]), 2)

    row["final"] = score(copy.deepcopy(env.obs_rms) if recipe.normalize else None)
    if hasattr(keep, "policy_state"):
        model.policy.load_state_dict(keep.policy_state)
        row["best"] = score(keep.obs_rms)
    else:  # no evaluation ran: the final model is the only one
        row["best"] = row["final"]
    return row


# ----- the benchmark ------------------------------------------------------------------------------
def run(presets: list[tuple[str, str]], seeds: int | list[int], out: Path, episodes: int = 50, sb3: bool = True,
        quick: bool = False, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and score every preset in `presets` over `seeds` (a count: drawn fresh now; or a list, to
    rerun), write the report to a new directory under `out`, and return the results. `quick` cuts every
    budget to a few thousand steps: it checks the pipeline, not the presets."""
    seed_list = fresh_seeds(seeds) if isinstance(seeds, int) else list(seeds)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = out / f"returns-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    for n in range(2, 1_000):  # two benchmarks started in the same second each get their own directory
        try:
            root.mkdir()
            break
        except FileExistsError:
            root = out / f"returns-{stamp}-{n}"
    results: dict[str, Any] = {"time": stamp, "machine": machine(), "seeds": seed_list, "episodes": episodes,
                               "quick": quick, "presets": []}
    for algo, env_id in presets:
        goal = GOALS[(algo, env_id)]
        overrides: dict[str, Any] = {}
        if quick:  # updates start within the shortened budget
            overrides = {"learning_starts": 256} if "learning_starts" in preset_for(algo, env_id) else {}
            goal = Goal(goal.target, goal.source, 2_048, 1_024,
                        SB3Recipe(goal.sb3.algo, 1_024, {**goal.sb3.kwargs, **({"learning_starts": 256} if
                                                         "learning_starts" in goal.sb3.kwargs else {})},
                                  goal.sb3.n_envs, goal.sb3.normalize) if goal.sb3 else None)
        entry: dict[str, Any] = {"algo": algo, "env_id": env_id, "target": goal.target, "source": goal.source,
                                 "steps": goal.steps, "eval_every": goal.eval_every, "preset": preset_for(algo, env_id),
                                 "ours": [], "sb3": [] if (sb3 and goal.sb3) else None}
        if entry["sb3"] is not None:
            entry["sb3_recipe"] = {"algo": goal.sb3.algo, "steps": goal.sb3.steps, "n_envs": goal.sb3.n_envs,
                                   "normalize": goal.sb3.normalize, "kwargs": json_ready(goal.sb3.kwargs)}
        results["presets"].append(entry)
        for seed in seed_list:
            entry["ours"].append(train_ours(algo, env_id, goal, seed, root / "runs" / f"{algo}_{env_id}" / f"seed{seed}",
                                            episodes, overrides))
            progress(f"{algo} {env_id} seed {seed}: ours final {entry['ours'][-1]['final']}, "
                     f"best {entry['ours'][-1]['best']}")
            if entry["sb3"] is not None:
                entry["sb3"].append(train_sb3(goal.sb3, env_id, goal.eval_every, seed,
                                              root / "runs" / f"sb3_{algo}_{env_id}" / f"seed{seed}", episodes))
                progress(f"{algo} {env_id} seed {seed}: SB3 final {entry['sb3'][-1]['final']}, "
                         f"best {entry['sb3'][-1]['best']}")
            # Kept whole after every seed: a benchmark stopped early keeps what it measured.
            (root / "results.json").write_text(json.dumps(results, indent=2))
        for library in ("ours", "sb3"):
            if entry[library]:
                entry[f"{library}_stats"] = {model: summarize([r[model] for r in entry[library]], goal.target)
                                             for model in ("final", "best")}
        (root / "results.json").write_text(json.dumps(results, indent=2))
    (root / "results.md").write_text(report(results))
    results["plot"] = str(plot(results, root / "returns.png"))
    results["dir"] = str(root)
    return results


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "lin":
        return f"lin_{value[1]}"
    if isinstance(value, tuple):
        return list(value)
    return value


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"# Returns on fresh seeds ({results['time']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}. Seeds (drawn at random at the start): "
             f"{', '.join(map(str, results['seeds']))}. Scores: greedy mean over {results['episodes']} fresh episodes "
             "on gymnasium's environment; IQM with a 95% stratified-bootstrap interval (rliable).", "",
             "| agent | environment | target | library | steps | model | at target | IQM [95% CI] | per seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in results["presets"]:
        for library in ("ours", "sb3"):
            stats = e.get(f"{library}_stats")
            if not stats:
                continue
            steps = e["steps"] if library == "ours" else e["sb3_recipe"]["steps"]
            for model in ("final", "best"):
                s = stats[model]
                lines.append(f"| {e['algo']} | {e['env_id']} | {e['target']:g} | {'ours' if library == 'ours' else 'SB3 (zoo)'}"
                             f" | {steps:,} | {model} | {s['at_target']}/{s['seeds']} | {s['iqm']:.1f} "
                             f"[{s['iqm_ci95'][0]:.1f}, {s['iqm_ci95'][1]:.1f}] | {', '.join(f'{x:g}' for x in s['scores'])} |")
    lines += ["", "Targets: " + "; ".join(f"{e['algo']} {e['env_id']} {e['target']:g} ({e['source']})"
                                          for e in results["presets"]), ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Per preset: the IQM and its interval for each library's final and best model (top), and the
    in-training evaluations against steps, median over seeds with the range shaded (bottom)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    presets = results["presets"]
    fig, axes = plt.subplots(2, len(presets), figsize=(4.2 * len(presets), 7), squeeze=False)
    for col, e in enumerate(presets):
        top, bottom = axes[0, col], axes[1, col]
        labels, x = [], 0
        for library, colour in (("ours", "tab:blue"), ("sb3", "tab:orange")):
            stats = e.get(f"{library}_stats")
            if not stats:
                continue
            for model in ("final", "best"):
                s = stats[model]
                top.errorbar([x], [s["iqm"]], yerr=[[s["iqm"] - s["iqm_ci95"][0]], [s["iqm_ci95"][1] - s["iqm"]]],
                             fmt="o", color=colour, capsize=4)
                top.scatter([x] * len(s["scores"]), s["scores"], color=colour, alpha=0.25, s=12)
                labels.append(f"{'ours' if library == 'ours' else 'SB3'}\n{model}")
                x += 1
            curves = [r["curve"] for r in e[library] if r["curve"]]
            if curves:
                steps = [s for s, _ in curves[0]]
                n = min(len(c) for c in curves)
                values = np.array([[v for _, v in c[:n]] for c in curves])
                bottom.plot(steps[:n], np.median(values, axis=0), color=colour, label="ours" if library == "ours" else "SB3")
                bottom.fill_between(steps[:n], values.min(axis=0), values.max(axis=0), color=colour, alpha=0.2)
        top.axhline(e["target"], color="grey", linestyle="--", linewidth=1)
        top.set_xticks(range(len(labels)), labels)
        top.set_title(f"{e['algo']} {e['env_id']}")
        top.set_ylabel("return (IQM, 95% CI)")
        bottom.axhline(e["target"], color="grey", linestyle="--", linewidth=1)
        bottom.set_xlabel("environment steps")
        bottom.set_ylabel("evaluation return")
        bottom.legend()
    fig.suptitle(f"{len(results['seeds'])} fresh seeds; {results['machine']['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
