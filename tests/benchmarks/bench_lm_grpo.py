"""Our critic-free group baseline (PPO on Text-v0, advantage="group") against TRL's GRPOTrainer, side by side.

    python tests/benchmarks/bench_lm_grpo.py --model DIR [--steps 60] [--threads 2] [--seed 0] [--seeds 1]
                                             [--learning-rate 3e-4] [--only ours|ours_async|trl] [--out DIR] [--profile]

DIR is the tiny GPT-2 that `rl pretrain-lm --out DIR` writes (model, tokenizer and prompts.txt). Three runs train
that model, in this process, one after the other (the order rotates from seed to seed): ours as the Text-v0 preset
runs it (generate a round, then update), ours with async_rollout=True (the next round is generated in a background
thread, by the weights from before the update in progress, while the update runs: one update off-policy, the CPU
threads split between the two), and TRL. All three use:

- the same prompts (DIR/prompts.txt; 8 prompts a step, drawn in a shuffled order, each once before any repeats),
- the same batch: 64 completions a step, 8 per prompt, 16 new tokens at most, temperature 1, no top-k / top-p,
- the same reward: VADER's compound sentiment of the completion, one Python function both call
  (`envs.rewards.vader_reward`, wrapped only to count the completions it scores),
- the same learning rate, annealed linearly to 0 over the run (TRL's default scheduler; our anneal_lr), Adam,
- one gradient step per batch of 64 completions (TRL: num_iterations=1, gradient_accumulation_steps=1; ours:
  n_epochs=1 and one minibatch of the whole round), so the importance ratio is 1 and clipping never acts (with
  async_rollout it is the ratio to the weights one update back, and clipping acts),
- no KL term and no reference model (TRL: beta=0.0, its default; ours: kl_coef=0.0, which skips the reference pass),
- token-level loss averaging over the batch (TRL's default loss_type="dapo"; ours: the masked mean of the minibatch).

A TRL step and one of our rounds are the same unit: 64 completions and one optimiser step. The script checks it by
counting the completions the reward function scored on each side. completions/s = steps * 64 / the wall time of
`trainer.train()` or `agent.learn(...)` (timed here around the call; building the trainer or agent is not counted,
one-time VADER lexicon loading is done before either clock starts). The reward per step is the mean VADER compound
of that step's 64 completions: TRL's `reward` in `trainer.state.log_history`, our `charts/reward_mean` read from the
run's TensorBoard events (log_interval=1024 environment steps: every round).

Differences that remain, each either side's default:

- Advantages: TRL subtracts the group mean and divides by the group's reward std (scale_rewards="group");
  ours subtracts the mean of the prompt's *other* completions (leave-one-out, RLOO), then normalises the
  advantages over the minibatch's tokens (normalize_advantage).
- Gradient clipping: TRL max_grad_norm=1.0, ours 0.5. Adam epsilon: TRL (AdamW, weight decay 0) 1e-8, ours 1e-5.
- Learning-rate schedule: TRL's linear schedule uses lr * (1 - (k-1)/steps) at step k, ours lr * (1 - k/steps)
  (the progress counts the round just collected), so our last update has rate 0.
- TRL defaults to gradient checkpointing (recomputing activations in the backward pass to save memory). It saves
  nothing that matters for a 0.5M-parameter model and costs time, so it is off here (fairer to TRL); pass
  --trl-gradient-checkpointing for TRL's default.
- Padding: TRL pads each step's prompts to the longest of its 8 and stops generating once every completion has
  ended; ours pads to the longest prompt of the round's 64 (the environment's width is the file's longest, and
  the columns every prompt pads are skipped) and always runs 16 steps (completions that end early idle, masked
  out).
- Memory: our training on a CPU sets glibc's malloc to keep freed memory for reuse (rlcore/allocator.py). The
  setting is process-wide, so this script makes it before any side runs, and TRL trains under it as well.
- Our model loader swaps GPT-2's Python "gelu_new" for torch's fused tanh GELU (the same function); TRL runs the
  model as transformers builds it.

Writes to --out (default runs/bench/lm_grpo_<time>/): results.json, results.md (the table printed at the end) and
reward.png (mean reward per step against completions seen). --profile runs ours once more under cProfile after
the timed runs and writes the top functions by cumulative and by own time to profile_ours.txt.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import textwrap
import time
import types
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may use the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, when run as a script

COMPLETIONS_PER_STEP = 64
GROUP_SIZE = 8
NEW_TOKENS = 16
REWARD_MODULE = "lm_grpo_bench_rewards"
SIDES = ("ours", "ours_async", "trl")
NAMES = {"ours": "ours", "ours_async": "ours, async_rollout", "trl": "TRL"}


class CountedVader:
    """`envs.rewards.vader_reward`, counting the completions it scores (to check both sides' unit of work)."""

    __name__ = "vader"

    def __init__(self) -> None:
        self.scored = 0

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        from envs.rewards import vader_reward

        self.scored += len(completions)
        return vader_reward(prompts, completions)


def read_prompts(model: Path) -> list[str]:
    return [line for line in (model / "prompts.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


def run_ours(args: argparse.Namespace, seed: int, work: Path, profile: cProfile.Profile | None = None,
             async_rollout: bool = False) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents import PPO

    reward = sys.modules[REWARD_MODULE].vader
    agent = PPO("Text-v0", model=str(args.model), reward=f"{REWARD_MODULE}:vader", num_envs=COMPLETIONS_PER_STEP,
                group_size=GROUP_SIZE, advantage="group", max_new_tokens=NEW_TOKENS, n_steps=NEW_TOKENS,
                batch_size=COMPLETIONS_PER_STEP * NEW_TOKENS, n_epochs=1, kl_coef=0.0,
                learning_rate=args.learning_rate, temperature=1.0, seed=seed, checkpoint_interval=0,
                log_interval=COMPLETIONS_PER_STEP * NEW_TOKENS, async_rollout=async_rollout)
    run_dir = work / f"ours_seed{seed}{'_async' if async_rollout else ''}"
    before = reward.scored
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    agent.learn(args.steps * COMPLETIONS_PER_STEP * NEW_TOKENS, run_dir=run_dir, progress=False)
    if profile is not None:
        profile.disable()
    seconds = time.perf_counter() - start
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = sorted(events.Scalars("charts/reward_mean"), key=lambda e: e.step)
    rounds = [e.step // (COMPLETIONS_PER_STEP * NEW_TOKENS) for e in scalars]
    if rounds != list(range(1, args.steps + 1)):
        raise RuntimeError(f"expected charts/reward_mean at rounds 1..{args.steps}, got {rounds}")
    wall = [e.wall_time for e in scalars]  # each logged as its round's update ended
    return {"rewards": [e.value for e in scalars], "seconds": seconds, "summary_wall_time": agent.summary["wall_time"],
            "step_seconds": [b - a for a, b in zip(wall, wall[1:])], "completions_scored": reward.scored - before}


def run_trl(args: argparse.Namespace, seed: int, work: Path) -> dict:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    reward = sys.modules[REWARD_MODULE].vader

    def vader(prompts: list[str], completions: list[str], **kwargs) -> list[float]:
        return reward(prompts, completions)

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, *a, **k):
            self.started = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.seconds.append(time.perf_counter() - self.started)

    config = GRPOConfig(
        output_dir=str(work / f"trl_seed{seed}"), use_cpu=True, bf16=False, fp16=False,
        per_device_train_batch_size=COMPLETIONS_PER_STEP, num_generations=GROUP_SIZE,
        max_completion_length=NEW_TOKENS, gradient_accumulation_steps=1, num_iterations=1, beta=0.0,
        learning_rate=args.learning_rate, temperature=1.0, logging_steps=1, report_to=[], save_strategy="no",
        max_steps=args.steps, seed=seed,
        # transformers 5.2x renamed TRL's default gradient_checkpointing=True; the new name avoids a FutureWarning.
        activation_checkpointing=args.trl_gradient_checkpointing,
        disable_tqdm=True, dataloader_num_workers=0, push_to_hub=False)
    dataset = Dataset.from_dict({"prompt": read_prompts(args.model)})
    timer = StepTimes()
    trainer = GRPOTrainer(model=str(args.model), reward_funcs=vader, args=config, train_dataset=dataset,
                          callbacks=[timer])
    trainer.remove_callback(PrinterCallback)  # disable_tqdm prints every step's log dict; the history keeps them
    before = reward.scored
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    history = [row for row in trainer.state.log_history if "reward" in row]
    steps = [row["step"] for row in history]
    if steps != list(range(1, args.steps + 1)):
        raise RuntimeError(f"expected TRL's reward logged at steps 1..{args.steps}, got {steps}")
    return {"rewards": [row["reward"] for row in history], "seconds": seconds, "step_seconds": timer.seconds[1:],
            "completions_scored": reward.scored - before}


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def plot(path: Path, runs: dict[str, list[dict]], steps: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [COMPLETIONS_PER_STEP * (k + 1) for k in range(steps)]
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, rows), color in zip(runs.items(), ("tab:blue", "tab:green", "tab:orange")):
        for r in rows:  # each seed faint, their mean bold
            ax.plot(x, r["rewards"], color=color, alpha=0.25 if len(rows) > 1 else 0.9, lw=1)
        if len(rows) > 1:
            ax.plot(x, [mean([r["rewards"][k] for r in rows]) for k in range(steps)], color=color, lw=2)
        ax.plot([], [], color=color, lw=2, label=name)
    ax.set_xlabel("completions seen")
    ax.set_ylabel("mean VADER compound of the step's completions")
    ax.set_title(textwrap.fill(title, 110), fontsize=7)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the tiny GPT-2 of `rl pretrain-lm --out DIR`")
    parser.add_argument("--steps", type=int, default=60, help="steps (TRL) = rounds (ours) of 64 completions")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads, both sides")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="seeds seed, seed+1, ...; ours and TRL alternate first")
    parser.add_argument("--learning-rate", type=float, default=3e-4,
                        help="both sides (3e-4: both curves still rising at 60 steps, neither at the +1 ceiling)")
    parser.add_argument("--trl-gradient-checkpointing", action="store_true", help="TRL's default; off here")
    parser.add_argument("--only", choices=SIDES, default=None, help="run one side only (tuning)")
    parser.add_argument("--profile", action="store_true", help="then run ours once more under cProfile")
    parser.add_argument("--out", type=Path, default=None, help="default runs/bench/lm_grpo_<time>/")
    args = parser.parse_args()
    if not (args.model / "config.json").is_file() or not (args.model / "prompts.txt").is_file():
        sys.exit(f"{args.model} is not a tiny GPT-2 with prompts.txt. Make one (about 2 minutes on a CPU) with:\n"
                 f"    rl pretrain-lm --out {args.model}")
    out = args.out or Path("runs") / "bench" / f"lm_grpo_{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    # Our training runs on a CPU set glibc's malloc to keep freed memory for reuse (rlcore/allocator.py); the
    # setting is process-wide, so it is made here, before any side runs: TRL trains under it too.
    from rlcore.allocator import reuse_freed_memory

    malloc = "glibc, freed memory kept for reuse" if reuse_freed_memory() else "the C library's defaults"
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # "Loading weights" bars
    # TRL 1.16 calls a method transformers 5.2x deprecated; nothing to act on here.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    sys.modules[REWARD_MODULE] = types.SimpleNamespace(vader=CountedVader())
    from envs.rewards import vader_reward

    vader_reward([""], ["a good start"])  # load the lexicon before any clock starts

    sides = [s for s in SIDES if args.only in (None, s)]
    runs: dict[str, list[dict]] = {NAMES[s]: [] for s in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.seeds):
            seed = args.seed + i
            for side in sides[i % len(sides):] + sides[:i % len(sides)]:
                r = (run_trl(args, seed, Path(tmp)) if side == "trl" else
                     run_ours(args, seed, Path(tmp), async_rollout=side == "ours_async"))
                r["seed"] = seed
                r["completions_per_s"] = args.steps * COMPLETIONS_PER_STEP / r["seconds"]
                r["median_step_completions_per_s"] = COMPLETIONS_PER_STEP / statistics.median(r["step_seconds"])
                if r["completions_scored"] != args.steps * COMPLETIONS_PER_STEP:
                    raise RuntimeError(f"{side} scored {r['completions_scored']} completions in {args.steps} steps, "
                                       f"not {args.steps * COMPLETIONS_PER_STEP}: the units differ")
                runs[NAMES[side]].append(r)
                print(f"seed {seed} {side}: {r['completions_per_s']:.1f} completions/s ({r['seconds']:.1f} s; "
                      f"median step {r['median_step_completions_per_s']:.1f}), "
                      f"reward first 5 {mean(r['rewards'][:5]):+.3f}, last 10 {mean(r['rewards'][-10:]):+.3f}",
                      flush=True)
        profile_text = None
        if args.profile and "ours" in sides:
            profile = cProfile.Profile()
            run_ours(args, args.seed, Path(tmp) / "profile", profile)
            buf = io.StringIO()
            stats = pstats.Stats(profile, stream=buf)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(30)
            profile_text = buf.getvalue()
            (out / "profile_ours.txt").write_text(profile_text)

    import trl

    runs = {k: v for k, v in runs.items() if v}
    gc = "on" if args.trl_gradient_checkpointing else "off"
    setting = (f"{args.model.name}, {args.steps} steps x {COMPLETIONS_PER_STEP} completions ({GROUP_SIZE} per prompt, "
               f"{NEW_TOKENS} new tokens), learning rate {args.learning_rate:g}, VADER reward; CPU, torch threads: "
               f"{args.threads}, torch {torch.__version__}, transformers {transformers.__version__}, TRL {trl.__version__} "
               f"(gradient checkpointing {gc}); malloc: {malloc}")
    summary = {}
    for name, rows in runs.items():
        summary[name] = {"completions_per_s": statistics.median(r["completions_per_s"] for r in rows),
                         "median_step_completions_per_s": statistics.median(r["median_step_completions_per_s"]
                                                                            for r in rows),
                         "reward_first5": mean([mean(r["rewards"][:5]) for r in rows]),
                         "reward_last10": mean([mean(r["rewards"][-10:]) for r in rows])}
    ratios: dict[str, list[float]] = {}  # per seed, against the TRL run timed beside it
    step_ratios: dict[str, list[float]] = {}
    for name, rows in runs.items():
        if name != "TRL" and "TRL" in runs:
            ratios[name] = [o["completions_per_s"] / t["completions_per_s"] for o, t in zip(rows, runs["TRL"])]
            step_ratios[name] = [o["median_step_completions_per_s"] / t["median_step_completions_per_s"]
                                 for o, t in zip(rows, runs["TRL"])]
    seeds = f"seed {args.seed}" if args.seeds == 1 else f"seeds {args.seed}..{args.seed + args.seeds - 1}"
    lines = [setting + f"; {seeds}", "",
             "| | completions/s | vs TRL | completions/s, median step | vs TRL | mean reward, steps 1-5 | "
             "mean reward, last 10 steps | gain |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in summary.items():
        ratio, step_ratio = (("1.00x", "1.00x") if name == "TRL" else ("-", "-") if name not in ratios else
                             (f"{statistics.median(ratios[name]):.2f}x", f"{statistics.median(step_ratios[name]):.2f}x"))
        lines.append(f"| {name} | {s['completions_per_s']:.1f} | {ratio} | {s['median_step_completions_per_s']:.1f} | "
                     f"{step_ratio} | {s['reward_first5']:+.3f} | {s['reward_last10']:+.3f} | "
                     f"{s['reward_last10'] - s['reward_first5']:+.3f} |")
    lines += ["", f"completions/s: {args.steps} x {COMPLETIONS_PER_STEP} over the wall time of trainer.train() / "
              "agent.learn(); median step: 64 over the median time of steps 2.. (less sensitive to other jobs on the "
              "machine)."]
    if args.seeds > 1:
        lines[-1] += " Figures are medians over seeds, rewards means over seeds."
        for name in ratios:
            lines[-1] += (f" Per-seed ratios, {name} (whole run): " + ", ".join(f"{r:.2f}" for r in ratios[name])
                          + "; (median step): " + ", ".join(f"{r:.2f}" for r in step_ratios[name]) + ".")
    table = "\n".join(lines)
    print("\n" + table)
    (out / "results.md").write_text(table + "\n")
    plot(out / "reward.png", runs, args.steps, setting)
    (out / "results.json").write_text(json.dumps(
        {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "setting": setting,
         "summary": summary, "ratios": ratios, "step_ratios": step_ratios, "runs": runs}, indent=2))
    print(f"\nwrote {out}/results.md, results.json, reward.png" + (", profile_ours.txt" if profile_text else ""))


if __name__ == "__main__":
    main()
