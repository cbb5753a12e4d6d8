"""The `rl` command: `rl train`, `rl eval`, `rl list`, `rl bench`.

Hyperparameter flags are generated from the config dataclasses of an agent's settings (its
own, its parts such as PPO's KL settings, and for Text-v0 the environment's and the language
model's): every flat name `foo_bar` is `--foo-bar VALUE`, typed and documented by the field
itself, so the CLI cannot drift from the Python API.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import gymnasium as gym
import torch

from agents import AGENTS
from agents.base import setting_groups
from agents.bench import PARTS
from agents.bench import run as run_bench
from agents.presets import PRESETS, preset_total_steps
from agents.rlhf import evaluate_text, samples_table
from envs import BACKENDS, TEXT_ENV_ID
from rlcore.checkpoint import MODEL_NAME, CheckpointError, load_checkpoint, resolve_checkpoint
from rlcore.config import ConfigError, field_docs, flat_fields, parts, split_settings
from rlcore.evaluation import evaluate
from rlcore.interrupt import Terminated

# Flags of `rl train` that are not hyperparameters, or that map to a config field directly.
RUN_FLAGS = {"total_steps", "run_dir", "resume", "progress"}
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
TRUST_HELP = ("also read checkpoints that hold pickled objects (written before format 3), and runs whose reward is a "
              "module:function: both run code, so only for files whose source you trust")


def _parse_value(cls: type, name: str, text: str) -> Any:
    """Convert a command-line string to the type annotated on field `name` of config `cls`."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = args[0] if optional and len(args) == 1 else hint
    try:
        if optional and text.lower() in {"none", "auto"}:
            return None
        if base is bool:
            if text.lower() in TRUE | FALSE:
                return text.lower() in TRUE
            raise ValueError("expected true or false")
        if typing.get_origin(base) is tuple:
            return tuple(int(x) for x in text.replace(",", " ").split())
        if base is int:
            return int(float(text)) if "e" in text.lower() else int(text)
        return base(text)
    except (ValueError, OverflowError) as exc:
        kind = getattr(base, "__name__", base)
        raise ConfigError(f"--{name.replace('_', '-')} {text!r}: not a valid {kind} ({exc}).") from None


def _hyperparameters(groups: dict[str, type], extra: Sequence[str]) -> dict[str, Any]:
    """Turn `--foo-bar VALUE` pairs into the flat settings of `groups`' configs, refusing unknown names."""
    fields = {name: owner for cls in groups.values() for name, owner in flat_fields(cls).items()}
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        flag = extra[i]
        if not flag.startswith("--"):
            raise ConfigError(f"Unexpected argument {flag!r}: hyperparameters are given as --name VALUE.")
        key, _, value = flag[2:].partition("=")
        name = key.replace("-", "_")
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" (did you mean '--{close[0].replace('_', '-')}'?)" if close else ""
            where = groups["agent"].__name__ + (" and Text-v0's settings" if len(groups) > 1 else "")
            raise ConfigError(f"Unknown hyperparameter '--{key}'{hint} for {where}. Valid names: "
                              + ", ".join("--" + f.replace("_", "-") for f in sorted(fields)) + ".")
        if not value:
            if i + 1 >= len(extra):
                raise ConfigError(f"--{key} needs a value.")
            value = extra[i + 1]
            i += 1
        owner, field = fields[name]
        out[name] = _parse_value(owner, field, value)
        i += 1
    return out


MAX_STEPS = 10**12  # a million steps a second for eleven days


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints its usage first): `rl <command> --help` has it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def whole(minimum: int, maximum: int = MAX_STEPS, what: str = "number") -> Callable[[str], int]:
    """An argparse type: a whole number from `minimum` to `maximum`, written 5000, 5e3 or 5_000."""
    def parse(text: str) -> int:
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
        if not (math.isfinite(value) and value == int(value) and minimum <= value <= maximum):
            raise argparse.ArgumentTypeError(f"{text!r} is invalid: give a whole {what} from {minimum:,} to {maximum:,}")
        return int(value)
    return parse


def finite(text: str) -> float:
    """An argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: give a finite number")
    return value


def _parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: a typo such as --see must fail, not silently become --seed.
    parser = Parser(prog="rl", description="Train and evaluate reinforcement-learning agents.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent; hyperparameters as --name VALUE (see `rl list`)",
                           allow_abbrev=False)
    train.add_argument("algo", choices=sorted(AGENTS))
    train.add_argument("env_id")
    train.add_argument("--total-steps", type=whole(1, what="number of steps"), default=None,
                       help="environment steps (default: the preset's budget, else 100000)")
    train.add_argument("--seed", type=whole(0, 2**32 - 1, "seed"), default=None)
    train.add_argument("--seeds", type=parse_seeds, default=None, metavar="LIST",
                       help="train one agent per seed at once, in this process (ppo): e.g. 0-15 or 0,3,7-9; each seed "
                            "gets its own run directory")
    train.add_argument("--num-envs", type=whole(1, 2**24, "number of copies"), default=None)
    train.add_argument("--device", default=None)
    train.add_argument("--threads", type=whole(1, 1024, "number of threads"), default=1,
                       help="torch CPU threads (default 1: small networks gain little from more, and lose a lot "
                            "when another process competes for the cores)")
    train.add_argument("--run-dir", default=None, help="where TensorBoard events and checkpoints go")
    train.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    train.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    train.add_argument("--eval-every", type=whole(0, what="number of steps"), default=0, metavar="STEPS",
                       help="evaluate deterministically every STEPS environment steps (0: never)")
    train.add_argument("--eval-episodes", type=whole(1, 10**6, "number of episodes"), default=20)
    train.add_argument("--stop-at-return", type=finite, default=None, metavar="R",
                       help="stop once the evaluation mean reaches R (needs --eval-every)")
    train.add_argument("--capture-video", action="store_true",
                       help="at each evaluation (--eval-every), one greedy episode as RUN_DIR/videos/step_<n>-0.mp4")
    train.add_argument("--hyperparams", default=None, metavar="FILE",
                       help="hyperparameters from a JSON or YAML file (rl tune's best_hyperparameters.json); flags win")

    export = sub.add_parser("export", help="a Text-v0 run's model as a Hugging Face directory (from_pretrained)",
                            allow_abbrev=False)
    export.add_argument("path", help="a run directory or a checkpoint file")
    export.add_argument("--out", required=True, help="the directory to write (new, or empty)")
    export.add_argument("--adapter", action="store_true", help="LoRA runs: the adapter alone, not merged into the weights")
    export.add_argument("--overwrite", action="store_true", help="write into --out even if it holds files")
    export.add_argument("--best", action="store_true", help="the run's best_model.pt instead of its final model")
    export.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)

    tune = sub.add_parser("tune", help="search hyperparameters with Optuna (results under runs/tune/STUDY/)",
                          allow_abbrev=False)
    tune.add_argument("algo", choices=sorted(AGENTS))
    tune.add_argument("env_id")
    tune.add_argument("--trials", type=whole(1, 10**6, "number of trials"), default=20)
    tune.add_argument("--budget", type=whole(1, what="number of steps"), default=None,
                      help="environment steps per trial (default: the preset's budget)")
    tune.add_argument("--eval-every", type=whole(1, what="number of steps"), default=None, metavar="STEPS",
                      help="evaluations per trial feed the pruner; the last one is the trial's value (default budget/5)")
    tune.add_argument("--eval-episodes", type=whole(1, 10**6, "number of episodes"), default=10)
    tune.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    tune.add_argument("--pruner", choices=("median", "halving", "none"), default="median")
    tune.add_argument("--study-name", default=None, help="default ALGO_ENV; the same name resumes the study")
    tune.add_argument("--storage", default=None, metavar="URL",
                      help="Optuna storage URL (default: SQLite at runs/tune/STUDY/study.db)")
    tune.add_argument("--n-jobs", type=whole(1, 1024, "number of workers"), default=1,
                      help="worker processes sharing the study")
    tune.add_argument("--search-space", default=None, metavar="FILE",
                      help="JSON or YAML: {name: {low, high, log, int} or {choices: [...]}} over the default space")
    tune.add_argument("--seed", type=whole(0, 2**32 - 1, "seed"), default=0, help="the sampler's and every trial's seed")
    tune.add_argument("--out", default="runs/tune")

    ev = sub.add_parser("eval", help="evaluate a trained agent deterministically", allow_abbrev=False)
    ev.add_argument("path", help="a run directory or a checkpoint file")
    ev.add_argument("--episodes", type=whole(1, 10**6, "number of episodes"), default=20)
    ev.add_argument("--seed", type=whole(0, 2**32 - 1, "seed"), default=None)
    ev.add_argument("--device", default=None)
    ev.add_argument("--backend", choices=BACKENDS, default=None,
                    help="environment implementation to evaluate on (default: the one the agent trained on)")
    ev.add_argument("--best", action="store_true", help="the run's best_model.pt (its best evaluation during training, "
                    "kept with --eval-every) instead of the final model")
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of acting greedily")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--samples", default=None, metavar="FILE.jsonl",
                    help="Text-v0 runs: every sampled completion with its prompt and reward, one JSON object a line")
    ev.add_argument("--video", default=None, metavar="DIR", help="also write evaluation episodes as mp4 files to DIR")
    ev.add_argument("--video-episodes", type=whole(1, 10**4, "number of episodes"), default=1,
                    help="how many episodes --video records (default 1)")
    ev.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)

    sub.add_parser("list", help="agents, their hyperparameters, environments with presets")

    bench = sub.add_parser("bench", help="speed comparisons against gymnasium and SB3 on this machine "
                                         "(markdown + PNG under runs/bench/)", allow_abbrev=False)
    bench.add_argument("--only", default=None, help=f"comma-separated parts: {', '.join(PARTS)} (default: all "
                                                     "but sps, which joins them with a CUDA --device)")
    bench.add_argument("--quick", action="store_true", help="tiny budgets: checks the pipeline, not the speed")
    bench.add_argument("--returns", action="store_true", help="instead of speed: each preset's final and best return "
                       "over fresh random seeds beside SB3's zoo recipe (IQM, 95%% CI, fraction at the target)")
    bench.add_argument("--algo", default=None, help="--returns: only this agent's presets")
    bench.add_argument("--env", default=None, help="--returns: only this environment's presets")
    bench.add_argument("--episodes", type=whole(1, 10**6, "number of episodes"), default=50,
                       help="--returns: fresh episodes that score each model")
    bench.add_argument("--no-sb3", dest="sb3", action="store_false", help="--returns: ours only")
    bench.add_argument("--seeds", default=None, help="our PPO seeds (default 0-4); with --returns, how many fresh "
                       "seeds to draw (default 10) or a seed list to rerun (e.g. 1234,5678)")
    bench.add_argument("--sb3-seeds", type=parse_seeds, default=None, help="SB3's PPO seeds (default 0-2)")
    bench.add_argument("--device", default="cpu", help="device of the env, seeds and sps parts")
    bench.add_argument("--threads", type=int, default=1, help="torch CPU threads, for every library")
    bench.add_argument("--out", default="runs/bench")

    lm = sub.add_parser("pretrain-lm", help="build the offline tiny GPT-2 (tokenizer, model, prompts.txt) and pretrain "
                                             "it on a generated movie-review corpus", allow_abbrev=False)
    lm.add_argument("--out", default="runs/tiny-lm", help="directory to save the model, tokenizer and prompts to")
    lm.add_argument("--minutes", type=finite, default=2.0, help="wall-clock budget of the pretraining")
    lm.add_argument("--seed", type=int, default=0)
    lm.add_argument("--threads", type=int, default=2, help="torch CPU threads")

    rm = sub.add_parser("train-reward-model", help="train a reward model from preference pairs (Bradley-Terry)",
                        allow_abbrev=False)
    rm.add_argument("--base", required=True, help="local Hugging Face model directory to start from (e.g. a GPT-2)")
    rm.add_argument("--data", required=True, help="JSONL with prompt, chosen and rejected fields")
    rm.add_argument("--out", required=True, help="directory for the reward model (use it as --reward rm:DIR)")
    rm.add_argument("--epochs", type=int, default=1)
    rm.add_argument("--batch-size", type=int, default=16)
    rm.add_argument("--lr", type=float, default=5e-5)
    rm.add_argument("--max-length", type=int, default=256)
    rm.add_argument("--seed", type=int, default=0)
    rm.add_argument("--device", default="cpu")
    return parser


def parse_seeds(text: str) -> list[int]:
    """`0-15`, `0,3,7-9` -> the list of seeds (ranges inclusive)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            lo, hi = int(first), int(last) if dash else int(first)
            if hi < lo:
                raise ValueError(f"{part!r} runs backwards")
            seeds += range(lo, hi + 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a seed list ({exc}); write e.g. 0-15, or 0,3,7-9 (ranges include both ends)") from exc
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} names a seed twice")
    return seeds


def _train(args: argparse.Namespace, extra: Sequence[str]) -> int:
    if args.threads < 1:
        raise ConfigError(f"--threads {args.threads} is invalid: must be >= 1.")
    torch.set_num_threads(args.threads)
    agent_cls = AGENTS[args.algo]
    groups = setting_groups(agent_cls.config_class, args.env_id)
    hp = _hyperparameters(groups, extra)
    if args.hyperparams:
        from agents.tune import load_hyperparameters

        from_file = load_hyperparameters(args.hyperparams)
        split_settings(groups, from_file, f"--hyperparams {args.hyperparams}")  # unknown names: one line, listing the valid
        hp = {**from_file, **hp}
    if args.seeds is not None:
        if args.algo != "ppo":
            raise ConfigError(f"--seeds trains several seeds at once with ppo; {args.algo} trains one seed per run "
                              "(use --seed).")
        if args.seed is not None or args.resume:
            raise ConfigError("--seeds cannot be combined with --seed or --resume (each seed's run resumes on its own: "
                              "rl train ppo ENV --resume RUN_DIR/seedN).")
        hp["seeds"] = args.seeds
    for name in ("seed", "num_envs", "device"):
        if getattr(args, name) is not None:
            hp[name] = getattr(args, name)
    if args.resume:
        path = resolve_checkpoint(args.resume)
        payload = load_checkpoint(path, map_location=hp.get("device", "cpu"), trust=args.trust_checkpoint)
        if (payload.get("algo"), payload.get("env_id")) != (args.algo, args.env_id):
            raise ConfigError(f"--resume {args.resume} holds a {payload.get('algo')} run on {payload.get('env_id')}, "
                              f"not {args.algo} on {args.env_id}.")
        agent = agent_cls.from_checkpoint(payload, path, trust=args.trust_checkpoint, **hp)
        total = args.total_steps if args.total_steps is not None else payload["counters"]["total_steps"]
        print(f"Resuming {args.resume} at step {agent.global_step:,} of {total:,}")
        run_dir = args.run_dir or args.resume
    else:
        agent = agent_cls(args.env_id, **hp)
        total = args.total_steps if args.total_steps is not None else preset_total_steps(args.algo, args.env_id)
        run_dir = args.run_dir
    callbacks = []
    if args.capture_video:
        from envs.render import can_render
        from rlcore.callbacks import CaptureVideo

        if not args.eval_every:
            raise ConfigError("--capture-video records an episode at each evaluation: give --eval-every STEPS too.")
        if not can_render(args.env_id):
            raise ConfigError(f"--capture-video: {args.env_id} cannot render rgb_array frames; leave the flag out.")
        callbacks.append(CaptureVideo())
    agent.learn(total, run_dir=run_dir, progress=args.progress, eval_every=args.eval_every,
                eval_episodes=args.eval_episodes, stop_at_return=args.stop_at_return, callbacks=callbacks)
    summaries = agent.summary if isinstance(agent.summary, list) else [agent.summary]
    run_dirs = agent.run_dirs
    for summary, run_dir in zip(summaries, run_dirs):
        if summary.get("final_mean_return") is not None:
            reached = (f"; reached {summary['stop_at_return']} at step {summary['steps_to_threshold']:,}"
                       if "steps_to_threshold" in summary else "")
            where = f" ({run_dir.name})" if len(run_dirs) > 1 else ""
            best = (f"; best {summary['best_mean_return']:.1f} at step {summary['best_step']:,} (best_model.pt)"
                    if "best_step" in summary else "")
            print(f"Evaluation{where}: mean return {summary['final_mean_return']:.1f} over {summary['eval_episodes']} "
                  f"episodes{reached}{best}")
    saved = run_dirs[0] / MODEL_NAME if len(run_dirs) == 1 else f"{MODEL_NAME} in each of {len(run_dirs)} seed directories"
    last_round = summaries[0].get("last_round")
    if last_round:  # a text environment: the reward of the last round's sampled completions
        print("Last round: " + ", ".join(f"{k} {v:.3f}" for k, v in last_round.items()))
    print(f"Done: {agent.global_step:,} steps. Model saved to {saved}\n"
          f"TensorBoard: tensorboard --logdir {run_dirs[0].parent}\n"
          f"Evaluate:    rl eval {run_dirs[0]}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    path = resolve_checkpoint(args.path, prefer=MODEL_NAME, best=args.best)
    overrides = {name: getattr(args, name) for name in ("device", "backend") if getattr(args, name)}
    payload = load_checkpoint(path, map_location=overrides.get("device", "cpu"), trust=args.trust_checkpoint)
    algo = payload.get("algo")
    if algo not in AGENTS:
        raise CheckpointError(f"Checkpoint '{path}' names agent {algo!r}, which this version does not know.")
    agent = AGENTS[algo].from_checkpoint(payload, path, trust=args.trust_checkpoint, **overrides)
    if args.samples and agent.env_id != TEXT_ENV_ID:
        raise ConfigError(f"--samples writes a Text-v0 run's completions; {agent.env_id} has none (try --video).")
    if args.video:
        from envs.render import can_render

        if agent.env_id == TEXT_ENV_ID or not can_render(agent.env_id):
            raise ConfigError(f"--video: {agent.env_id} cannot render rgb_array frames (a Text-v0 run's samples are "
                              "printed instead); leave --video out.")
    if agent.env_id == TEXT_ENV_ID:  # the reward of sampled completions (there is no greedy episode to replay)
        mean, std, samples = evaluate_text(agent, episodes=args.episodes, seed=args.seed)
        rows = [{"prompt": p, "completion": c, "reward": r} for p, c, r in zip(*samples.values())]
        result = {"mean_reward": mean, "std_reward": std, "completions": args.episodes, "env_id": agent.env_id,
                  "algo": algo, "checkpoint": str(path), "seed": args.seed, "samples": rows[:8]}
        print(json.dumps(result) if args.json else
              f"{algo} on {agent.env_id}: mean reward {mean:.3f} +/- {std:.3f} over {args.episodes} sampled "
              f"completions ({path})\n" + samples_table(samples))
        if args.samples:
            Path(args.samples).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            print(f"Samples: {args.samples} ({len(rows)} completions)", file=sys.stderr if args.json else sys.stdout)
        return 0
    mean, std = evaluate(agent, agent.env_id, episodes=args.episodes, seed=args.seed, deterministic=not args.stochastic)
    result = {"mean_return": mean, "std_return": std, "episodes": args.episodes, "env_id": agent.env_id,
              "algo": algo, "checkpoint": str(path), "deterministic": not args.stochastic, "seed": args.seed}
    print(json.dumps(result) if args.json else
          f"{algo} on {agent.env_id}: mean return {mean:.2f} +/- {std:.2f} over {args.episodes} episodes ({path})")
    if args.video:
        from envs.render import record_episodes

        videos = record_episodes(lambda **kw: agent.make_eval_env(num_envs=1, seed=args.seed, **kw),
                                 lambda obs: agent.predict(obs, deterministic=not args.stochastic), agent.env_id,
                                 args.video, episodes=args.video_episodes, seed=args.seed)
        print(f"Videos: {', '.join(map(str, videos))}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise ConfigError(f"--threads {args.threads} is invalid: must be >= 1.")
    torch.set_num_threads(args.threads)
    if args.returns:
        return _bench_returns(args)
    if args.algo or args.env:
        raise ConfigError("--algo and --env choose presets for --returns; the speed parts take --only.")
    args.seeds = seeds_flag(args.seeds) if args.seeds is not None else None
    if args.only is None:
        parts = PARTS if torch.device(args.device).type == "cuda" else tuple(p for p in PARTS if p != "sps")
    else:
        parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    results = run_bench(parts, Path(args.out), quick=args.quick, seeds=args.seeds, sb3_seeds=args.sb3_seeds,
                        device=args.device)
    print((Path(results["dir"]) / "results.md").read_text())
    print(f"Written to {results['dir']} (results.md, results.json"
          + (", plot.png)" if results["plot"] != "None" else "; no plot: pip install -e \".[bench]\" for matplotlib)"))
    return 0


def seeds_flag(text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"--seeds: {exc}") from None


def _bench_returns(args: argparse.Namespace) -> int:
    from agents import returns

    text = args.seeds or "10"
    seeds: int | list[int] = int(text) if text.lstrip("-").isdigit() else seeds_flag(text)
    presets = returns.check_request(args.algo, args.env, seeds if isinstance(seeds, int) else len(seeds))
    if args.sb3:
        try:
            import stable_baselines3  # noqa: F401  (the reference must be there before anything runs)
        except ImportError:
            raise ConfigError('rl bench --returns trains SB3 beside ours: pip install -e ".[bench]" (or pass --no-sb3)') \
                from None
    results = returns.run(presets, seeds, Path(args.out), episodes=args.episodes, sb3=args.sb3, quick=args.quick)
    print((Path(results["dir"]) / "results.md").read_text())
    print(f"Written to {results['dir']} (results.md, results.json"
          + (", returns.png)" if results["plot"] != "None" else "; no plot: pip install -e \".[bench]\" for matplotlib)"))
    return 0


def _export(args: argparse.Namespace) -> int:
    path = resolve_checkpoint(args.path, prefer=MODEL_NAME, best=args.best)
    payload = load_checkpoint(path, trust=args.trust_checkpoint)
    if payload.get("env_id") != TEXT_ENV_ID:
        raise ConfigError(f"rl export: {args.path} is a {payload.get('algo')} run on {payload.get('env_id')}, not a "
                          f"language-model run ({TEXT_ENV_ID}); its {MODEL_NAME} is already the whole model.")
    from agents.rlhf import check_export_dir

    check_export_dir(args.out, args.overwrite)  # before the model loads: a refusal costs nothing
    agent = AGENTS[payload["algo"]].from_checkpoint(payload, path, trust=args.trust_checkpoint)
    out = agent.export_pretrained(args.out, adapter_only=args.adapter, overwrite=args.overwrite)
    print(f"Exported {path} to {out} ({'the LoRA adapter' if args.adapter else 'weights'}, tokenizer, generation config)."
          f"\nLoad: AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from agents.tune import TuneSettings, tune

    budget = args.budget or preset_total_steps(args.algo, args.env_id)
    settings = TuneSettings(args.algo, args.env_id, args.trials, budget, args.eval_every or max(budget // 5, 1),
                            args.eval_episodes, args.sampler, args.pruner, args.study_name, args.storage, args.n_jobs,
                            args.search_space, args.seed, args.out)
    best = tune(settings)
    print(f"Best of {best['trials']} trials ({best['completed']} completed) in {best['wall_time']:.0f} s: trial "
          f"{best['trial']}, mean return {best['value']:.1f}\n"
          f"  {json.dumps(best['hyperparameters'])}\n"
          f"Written to {settings.root} (best_hyperparameters.json, trials.md, trials.csv"
          + "".join(f", {Path(p).name}" for p in best["plots"]) + ", hparams/ for TensorBoard)\n"
          f"Train with them: rl train {args.algo} {args.env_id} --hyperparams {settings.root / 'best_hyperparameters.json'}")
    return 0


def _pretrain_lm(args: argparse.Namespace) -> int:
    from agents.tiny_lm import pretrain

    if args.minutes <= 0:
        raise ConfigError(f"--minutes {args.minutes} is invalid: must be > 0.")
    torch.set_num_threads(max(args.threads, 1))
    result = pretrain(args.out, minutes=args.minutes, seed=args.seed)
    print(f"Saved to {result['path']}: train with  rl train ppo Text-v0 --model {result['path']}")
    return 0


def _train_reward_model(args: argparse.Namespace) -> int:
    from agents.reward_model import train_reward_model

    result = train_reward_model(args.base, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                max_length=args.max_length, seed=args.seed, device=args.device)
    print(f"Reward model saved to {result['path']} (held-out accuracy {result['eval_accuracy']}): use it as "
          f"--reward rm:{result['path']}")
    return 0


GROUP_TITLES = {"env": f"{TEXT_ENV_ID} environment", "policy": "LM policy"}


def _print_settings(title: str, cls: type, names: Sequence[str], prefix: str = "") -> None:
    """One group of settings: each flat name's flag, default and docstring."""
    docs = field_docs(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    print(f"  {title}:")
    for name in names:
        default = defaults[name[len(prefix):]]
        default = ",".join(map(str, default)) if isinstance(default, tuple) else default
        print(f"    --{name.replace('_', '-'):<26} {default!s:<10} {docs.get(name[len(prefix):], '')}")


def _list() -> int:
    for name, cls in sorted(AGENTS.items()):
        print(f"{name}  ({cls.__doc__.strip().splitlines()[0]})")
        config = cls.config_class
        _print_settings(name.upper(), config, [f.name for f in dataclasses.fields(config) if f.name not in parts(config)])
        for part, part_cls in parts(config).items():
            doc = field_docs(config).get(part, "").split(":")[0]
            _print_settings(f"{part.upper()}: {doc[0].lower() + doc[1:]}" if doc else part.upper(), part_cls,
                            [f"{part}_{f.name}" for f in dataclasses.fields(part_cls)], prefix=f"{part}_")
        if cls.trains_text:
            for group, group_cls in setting_groups(config, TEXT_ENV_ID).items():
                if group in GROUP_TITLES:
                    _print_settings(GROUP_TITLES[group], group_cls, [f.name for f in dataclasses.fields(group_cls)])
        presets = PRESETS.get(name, {})
        print(f"  presets: {', '.join(sorted(presets)) or 'none'}\n")
    ids = sorted(k for k in gym.registry if not k.startswith("ALE/"))
    print("environments (gymnasium registry; ALE/... ids with the atari extra):")
    print("  " + "\n  ".join(ids))
    print(f"language models: {TEXT_ENV_ID} (ppo; --model DIR --prompts FILE --reward vader; see docs/language-models.md)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args, extra = _parser().parse_known_args(argv)
    except SystemExit as exc:  # --help, or a one-line usage error already printed
        return int(exc.code or 0)
    if args.command != "train" and extra:
        print(f"rl {args.command}: unrecognised arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    try:
        if args.command == "train":
            return _train(args, extra)
        if args.command == "eval":
            return _eval(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "tune":
            return _tune(args)
        if args.command == "export":
            return _export(args)
        if args.command == "pretrain-lm":
            return _pretrain_lm(args)
        if args.command == "train-reward-model":
            return _train_reward_model(args)
        return _list()
    except Terminated:
        return 143  # SIGTERM: the agent already saved a checkpoint and printed how to resume
    except KeyboardInterrupt:
        return 130  # the agent already saved a checkpoint and printed how to resume
    except (ConfigError, CheckpointError, FloatingPointError, ValueError, FileNotFoundError, FileExistsError,
            gym.error.DependencyNotInstalled) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
