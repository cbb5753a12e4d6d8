"""The training run an agent's `learn` loop drives: run directories, TensorBoard, the progress bar,
periodic evaluation, checkpoints, Ctrl-C and `summary.json`.

Every effect happens in a call the learn loop makes, in this order::

    run = TrainingRun(self, total_steps, ...)  # checks the settings; nothing is written yet
    with run.start():                          # run directories, loggers, progress bar; Ctrl-C is caught
        self.prepare_run(run)                  # the agent takes the target and directories; first reset
        while self.global_step < total_steps and not run.stopped:
            ...                                # collect, advantages, update
            run.log(stats)                     # callbacks' on_step; every log_interval steps: TensorBoard
            run.evaluate()                     # every eval_every steps: best_model.pt; stops the run at the target
            run.checkpoint()                   # every checkpoint_interval steps
        self.summary = run.finish()            # checkpoint, model, final evaluation, summary.json

Leaving the `with` block only closes the run (`close`: flush the loggers, give Ctrl-C back), also
after an error; it saves, evaluates and writes nothing.

An agent training several seeds at once (`agent.seeds`, stacked networks) gets one of everything per
seed: run directory (`<run_dir>/seed<s>`), logger, evaluations, checkpoint and summary, written from
`agent.member(m)`, a plain single-seed agent; scalars that are `[members]` tensors are split among
them. The run stops at the target when every seed has reached it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import IO, Any, Protocol, Sequence

import torch

try:
    import fcntl  # file locks; not on Windows, where a run directory is not locked
except ImportError:  # pragma: no cover
    fcntl = None

from envs.core import VecEnv
from envs.wrappers import EpisodeStatistics
from rlcore.allocator import reuse_freed_memory
from rlcore.callbacks import Callback, CallbackError
from rlcore.checkpoint import BEST_MODEL_NAME, CHECKPOINT_NAME, MODEL_NAME
from rlcore.evaluation import evaluate
from rlcore.interrupt import GracefulInterrupt
from rlcore.logger import Logger, ProgressBar, run_name
from rlcore.nan_guard import NanGuard
from rlcore.timing import Timing

BEST_RECORD_NAME = "best_model.json"
RUN_FILES = ("config.json", CHECKPOINT_NAME, MODEL_NAME, BEST_MODEL_NAME, "summary.json")
LOCK_NAME = ".lock"


class RunSettings(Protocol):
    """The config fields a run reads."""

    seed: int
    log_interval: int
    checkpoint_interval: int


class Trainee(Protocol):
    """What a training run needs of an agent: its names, its environment and step count, its NaN
    guard, a way to save and to act (for evaluation), and each seed it trains as an agent of its own."""

    algo: str
    env_id: str
    env: VecEnv
    config: RunSettings
    global_step: int
    nan_guard: NanGuard
    seeds: tuple[int, ...] | None
    run_dir: Path | None
    run_dirs: list[Path]
    device: torch.device

    def member(self, m: int) -> "Trainee": ...

    def save(self, path: str | Path, include_buffer: bool = False) -> Path: ...

    def predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor: ...

    def make_eval_env(self, env_id: str | None = None, num_envs: int = 1, seed: int | None = None) -> VecEnv: ...


def check_eval_settings(every: int, episodes: int, stop_at_return: float | None) -> None:
    if every < 0 or episodes < 1:
        raise ValueError(f"eval_every = {every} must be >= 0 and eval_episodes = {episodes} >= 1.")
    if stop_at_return is not None and not math.isfinite(stop_at_return):
        raise ValueError(f"stop_at_return = {stop_at_return} is invalid: give a finite return to stop at.")
    if stop_at_return is not None and every == 0:
        raise ValueError("stop_at_return needs eval_every > 0: the target is checked at each evaluation.")


class PeriodicEvaluation:
    """Deterministic evaluation of one agent every `every` environment steps, the best model so far
    (`best_model.pt`, as SB3's EvalCallback keeps it), the target return that stops the run, and the
    run's `summary.json`. Its wall time is kept apart, so training times exclude it.

    The best evaluation's step and mean return are kept in `best_model.json` beside the model, so a
    resumed run replaces the best model only with a better one."""

    def __init__(self, logger: Logger, env_id: str, first_step: int, every: int = 0, episodes: int = 20,
                 stop_at_return: float | None = None, seed: int = 10_000):
        self.logger, self.env_id = logger, env_id
        self.every, self.episodes, self.stop_at_return, self.seed = every, episodes, stop_at_return, seed
        self.next_at = first_step + every if every else None
        self.eval_seconds = 0.0
        self.last_mean: float | None = None
        self.last_step: int | None = None
        self.reached: dict[str, float] = {}
        self.best: dict[str, float] = read_best_record(logger.run_dir) if every else {}

    def due(self, global_step: int) -> bool:
        return self.next_at is not None and global_step >= self.next_at

    def run(self, policy: Trainee, global_step: int, train_time: float) -> None:
        """Evaluate `policy` now; a first mean at or above the target is recorded in `reached`, with
        the step and the training wall time `train_time`."""
        t0 = time.perf_counter()
        mean, std = evaluate(policy, self.env_id, episodes=self.episodes, seed=self.seed,
                             num_envs=min(self.episodes, 10))
        self.last_mean, self.last_step = mean, global_step
        self.logger.log(global_step, {"eval/mean_return": mean, "eval/std_return": std})
        if math.isfinite(mean) and mean > self.best.get("best_mean_return", -math.inf):
            policy.save(self.logger.run_dir / BEST_MODEL_NAME)
            self.best = {"best_mean_return": mean, "best_step": global_step}
            write_json(self.logger.run_dir / BEST_RECORD_NAME, self.best)
        while self.next_at is not None and self.next_at <= global_step:
            self.next_at += self.every
        self.eval_seconds += time.perf_counter() - t0
        if self.stop_at_return is not None and mean >= self.stop_at_return and not self.reached:
            self.reached = {"steps_to_threshold": global_step, "wall_time_to_threshold": train_time}

    def write_summary(self, global_step: int, wall: float, last_round: dict[str, float] | None) -> dict[str, Any]:
        """`summary.json`: steps, training wall time, the last evaluation's mean return, the threshold
        figures when the target was reached, the best evaluation's step and mean return, and for a text
        environment the last round's statistics."""
        summary = {"steps": global_step, "wall_time": wall, "final_mean_return": self.last_mean,
                   "eval_episodes": self.episodes, "stop_at_return": self.stop_at_return, **self.reached, **self.best}
        if last_round:
            summary["last_round"] = last_round
        write_json(self.logger.run_dir / "summary.json", summary)
        return summary


def read_best_record(run_dir: Path) -> dict[str, float]:
    """The best evaluation a run in `run_dir` recorded before (a resume); {} when none or unreadable."""
    try:
        record = json.loads((run_dir / BEST_RECORD_NAME).read_text())
        return record if isinstance(record.get("best_mean_return"), (int, float)) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Valid JSON (NaN and inf become null), written whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(value), indent=2, allow_nan=False))
    tmp.replace(path)




class RunDirectoryError(ValueError):
    """A run directory that a run may not write into."""


def check_run_dirs(run_dirs: Sequence[Path], own: Sequence[Path]) -> None:
    """A run writes only into new or empty directories, or into the ones of the agent's own run
    (`own`: where it was loaded from or last trained): never over another run's files."""
    mine = {Path(d).resolve() for d in own}
    for d in run_dirs:
        if d.exists() and not d.is_dir():
            raise RunDirectoryError(f"Run directory '{d}' is a file, not a directory: give a directory (--run-dir DIR).")
        found = sorted(p.name for p in d.glob("*") if p.name in RUN_FILES or p.name.startswith("events.out.")) \
            if d.is_dir() else []
        if found and d.resolve() not in mine:
            raise RunDirectoryError(
                f"Run directory '{d}' holds another run ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); a "
                f"new run never writes over it. Continue that run (rl train ... --resume {d}; Python: Agent.load('{d}')"
                ".learn(...)), or give a fresh run directory.")


def lock_run_dir(run_dir: Path) -> IO[str]:
    """Create `run_dir` and hold an exclusive lock on its lock file until the returned file is closed;
    a second process training into it fails at once."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(run_dir / LOCK_NAME, "w")
    if fcntl is not None:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise RunDirectoryError(f"Run directory '{run_dir}' is in use by another training process (it holds "
                                    f"{run_dir / LOCK_NAME}): wait for it to finish, or give another run directory."
                                    ) from None
    return lock


def json_safe(value: Any) -> Any:
    """`value` with every NaN or inf float (a diverged evaluation) as None: JSON has neither."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


def interrupted_message(algo: str, env_id: str, step: int, checkpoint: Path, run_dir: Path) -> str:
    return (f"\nInterrupted at step {step:,}. Checkpoint saved to {checkpoint}; TensorBoard logs flushed.\n"
            f"Resume with: rl train {algo} {env_id} --resume {run_dir}")


class TrainingRun:
    """One call of an agent's `learn`: see the module docstring for the calls and their order.

    `hparams` go to TensorBoard's text tab and `config.json`; `phases` name the parts of an
    iteration the loop times (`run.timing.phase(name)`); `include_buffer` puts the agent's replay
    buffer in training checkpoints."""

    def __init__(self, agent: Trainee, total_steps: int, hparams: dict[str, Any], phases: Sequence[str], *,
                 run_dir: str | Path | None = None, progress: bool = True, eval_every: int = 0,
                 eval_episodes: int = 20, stop_at_return: float | None = None, include_buffer: bool = False,
                 callbacks: Sequence[Callback] = ()):
        # Checked before anything is written, so bad settings leave nothing behind.
        if total_steps < 1:
            raise ValueError(f"total_steps = {total_steps} is invalid: must be >= 1.")
        check_eval_settings(eval_every, eval_episodes, stop_at_return)
        self.agent, self.total_steps, self.hparams = agent, total_steps, hparams
        self.progress, self.include_buffer = progress, include_buffer
        self.eval_settings = (eval_every, eval_episodes, stop_at_return)
        seeds = agent.seeds or (agent.config.seed,)
        self.members = len(seeds)
        if agent.seeds is None:  # an explicit directory, else the one a loaded agent came from, else a new one
            self.run_dirs = [Path(run_dir or agent.run_dir or Path("runs") / run_name(agent.env_id, agent.algo, seeds[0]))]
        else:
            self.run_dirs = [Path(run_dir) / f"seed{s}" if run_dir is not None
                             else Path("runs") / run_name(agent.env_id, agent.algo, s) for s in seeds]
        self.seeds = seeds
        check_run_dirs(self.run_dirs, [d for d in (agent.run_dir, *agent.run_dirs) if d is not None])
        self.timing = Timing(*phases)
        self.interrupt = GracefulInterrupt()
        self.target_reached = False
        self.callbacks = list(callbacks)
        self.stop_requested = False  # a callback returned False
        self.loggers: list[Logger] = []
        self.evals: list[PeriodicEvaluation] = []
        self.bar: ProgressBar | None = None
        self._locks: list[IO[str]] = []

    @property
    def run_dir(self) -> Path:
        """The run's directory (several seeds: their parent)."""
        return self.run_dirs[0] if self.members == 1 else self.run_dirs[0].parent

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dirs[0] / CHECKPOINT_NAME

    @property
    def stopped(self) -> bool:
        """Every seed reached the target return, a callback asked to stop, or Ctrl-C did."""
        return self.target_reached or self.stop_requested or self.interrupt.requested

    def start(self) -> "TrainingRun":
        """Lock the run directories (one process per directory), create them with their TensorBoard
        writers and `config.json`, show the progress bar, and catch Ctrl-C and SIGTERM (the loop then
        stops at its next step boundary). On a CPU, freed memory is
        kept for reuse from now on (`rlcore.allocator`): every step's large tensors then reuse pages."""
        agent = self.agent
        self._locks = [lock_run_dir(d) for d in self.run_dirs]
        self.loggers = [Logger(d, {**self.hparams, "seed": s}) for d, s in zip(self.run_dirs, self.seeds)]
        every, episodes, target = self.eval_settings
        self.evals = [PeriodicEvaluation(lg, agent.env_id, agent.global_step, every, episodes, target)
                      for lg in self.loggers]
        self.stats_env = agent.env.find(EpisodeStatistics)
        self.bar = ProgressBar(self.total_steps, initial=agent.global_step, enabled=self.progress)
        self.step_start = agent.global_step
        self.next_log = agent.global_step + agent.config.log_interval
        interval = agent.config.checkpoint_interval
        self.next_checkpoint = agent.global_step + interval if interval else None
        self.started = time.perf_counter()
        self.interrupt.__enter__()
        if agent.device.type == "cpu":
            reuse_freed_memory()
        self.call("on_training_start", agent)
        return self

    def __enter__(self) -> "TrainingRun":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def train_time(self) -> float:
        """Wall time spent training: evaluations (of every seed) excluded."""
        return time.perf_counter() - self.started - sum(e.eval_seconds for e in self.evals)

    def call(self, hook: str, *args: Any) -> None:
        """Every callback's `hook`; False from one stops the run. One that raises: the checkpoint is saved
        and a `CallbackError` names the callback."""
        for callback in self.callbacks:
            try:
                result = getattr(callback, hook)(*args)
            except Exception as exc:
                path = self.save_checkpoint() if hook != "on_training_end" else self.checkpoint_path
                raise CallbackError(f"Callback {type(callback).__name__}.{hook} raised {type(exc).__name__}: {exc}. "
                                    f"Training stopped; the checkpoint is {path} (resume with --resume "
                                    f"{self.run_dir}).") from exc
            if result is False:
                self.stop_requested = True

    # ----- during the loop ---------------------------------------------------------------------
    def log(self, scalars: dict[str, Any], texts: dict[str, str] | None = None) -> bool:
        """After every pass of the learn loop: the callbacks' `on_step`. Every `log_interval` steps (and at
        the last): the NaN check, `scalars` (a `[members]` tensor is split among the seeds), episode
        returns and lengths, where the time went, steps per second, `texts` (TensorBoard's text tab),
        the progress bar. True when it logged."""
        step = self.agent.global_step
        if self.callbacks:
            self.call("on_step", self.agent, step)
        if step < self.next_log and step < self.total_steps:
            return False
        while self.next_log <= step:
            self.next_log += self.agent.config.log_interval
        self.agent.nan_guard.check(self.agent.algo, self.checkpoint_path)
        sps = (step - self.step_start) / max(self.train_time(), 1e-9)
        scalars = {**scalars, **self.timing.pop(), "charts/SPS": sps}
        if self.stats_env is not None:
            ret_sum, len_sum, count = self.stats_env.pop_finished(groups=self.members if self.members > 1 else None)
            counts = count.reshape(-1).tolist()  # one sync per log, to leave windows without an episode blank
        for m, logger in enumerate(self.loggers):
            member = {k: v[m] if isinstance(v, torch.Tensor) and v.dim() > 0 else v for k, v in scalars.items()}
            if self.stats_env is not None and counts[m] > 0:
                member["charts/episodic_return"] = ret_sum.reshape(-1)[m] / counts[m]
                member["charts/episodic_length"] = len_sum.reshape(-1)[m] / counts[m]
            logger.log(step, member)
        for tag, text in (texts or {}).items():
            self.loggers[0].text(tag, text, step)
        if self.bar.enabled:  # the recent mean return costs a sync
            self.bar.update(step, sps, self.stats_env.recent_mean_return() if self.stats_env else None)
        return True

    def evaluate(self) -> None:
        """Every `eval_every` steps: evaluate each seed; `stopped` once every seed has reached the target."""
        step = self.agent.global_step
        if not self.evals[0].due(step):
            return
        train_time = self.train_time()
        for m, e in enumerate(self.evals):
            e.run(self.agent.member(m), step, train_time)
        self.target_reached = all(e.reached for e in self.evals) and self.evals[0].stop_at_return is not None
        self.call("on_evaluation", self.agent, step, sum(e.last_mean for e in self.evals) / len(self.evals))

    def checkpoint(self) -> None:
        """Every `checkpoint_interval` steps: `save_checkpoint`."""
        step = self.agent.global_step
        if self.next_checkpoint is None or step < self.next_checkpoint:
            return
        self.save_checkpoint()
        while self.next_checkpoint <= step:
            self.next_checkpoint += self.agent.config.checkpoint_interval

    def save_checkpoint(self) -> Path:
        """Everything a resume needs; refused once a loss or input went NaN, so the last good one survives."""
        self.agent.nan_guard.check(self.agent.algo, self.checkpoint_path)
        return self._save(CHECKPOINT_NAME, self.include_buffer)

    def _save(self, name: str, include_buffer: bool) -> Path:
        for m, d in enumerate(self.run_dirs):
            self.agent.member(m).save(d / name, include_buffer=include_buffer)
        return self.run_dirs[0] / name if self.members == 1 else self.run_dir / f"seed*/{name}"

    # ----- at the end ------------------------------------------------------------------------------
    def finish(self, last_round: dict[str, Any] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """After Ctrl-C or SIGTERM: save the checkpoint, say how to resume, raise KeyboardInterrupt
        (`rlcore.interrupt.Terminated` for SIGTERM). Else: the
        checkpoint and `model.pt`, a final evaluation (when the run evaluates and has not just done so)
        and `summary.json` (with `last_round`, a text round's statistics); returns the summary (a list
        of them for several seeds)."""
        agent = self.agent
        if self.interrupt.requested:
            path = self.save_checkpoint()
            print(interrupted_message(agent.algo, agent.env_id, agent.global_step, path, self.run_dir), flush=True)
            raise self.interrupt.stop()
        self.save_checkpoint()
        self._save(MODEL_NAME, include_buffer=False)
        wall = self.train_time()
        rounds = {k.split("/")[-1]: float(v) for k, v in (last_round or {}).items()}
        summaries = []
        for m, e in enumerate(self.evals):
            if e.every and e.last_step != agent.global_step:
                e.run(agent.member(m), agent.global_step, wall)
            summaries.append(e.write_summary(agent.global_step, wall, rounds))
        summary = summaries[0] if self.members == 1 else summaries
        self.call("on_training_end", agent, summary)
        return summary

    def close(self) -> None:
        """Flush and close the loggers and the progress bar, give Ctrl-C and SIGTERM back, release the
        run directories (also after an error)."""
        self.interrupt.__exit__()
        for logger in self.loggers:
            logger.close()
        if self.bar is not None:
            self.bar.close()
        for lock in self._locks:
            lock.close()  # closing the file releases its lock
        self._locks = []
