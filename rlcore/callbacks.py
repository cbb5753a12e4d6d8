"""What a training run calls back into, for code that watches or steers a run from outside the agent
(a hyperparameter search, a script's own stopping rule, extra checkpoints).

A callback subclasses `Callback` and overrides the hooks it needs; `learn(..., callbacks=[...])`
calls them in order. A hook that returns False stops the run at the next step boundary, which then
ends as a finished run does (checkpoint, model, summary). A hook that raises stops the run too: the
training checkpoint is saved first and the error names the callback (`CallbackError`).

Built-ins for what SB3 users reach for: `CheckpointEvery` (every N steps, keeping the last K),
`StopAtReturn` (a reward threshold), `StopWhenNoImprovement` (patience over evaluations) and
`CaptureVideo` (an evaluation episode as mp4 at each evaluation). Periodic
evaluation with best-model saving is the run's own (`eval_every`), and these hooks see its results.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class Callback:
    def on_training_start(self, agent: Any) -> None:
        """Once, after the run directories exist and before the first step."""

    def on_step(self, agent: Any, step: int) -> bool | None:
        """After every pass of the learn loop: a rollout and its update (PPO, A2C, REINFORCE), or one
        vector-environment step (DQN, SAC, TD3). `step` counts environment steps. False stops the run."""
        return None

    def on_evaluation(self, agent: Any, step: int, mean_return: float) -> bool | None:
        """After each periodic evaluation (`eval_every`): the step and the greedy mean return (the mean
        over seeds when several train at once). False stops the run."""
        return None

    def on_training_end(self, agent: Any, summary: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Once, after the summary is written (not after Ctrl-C or an error)."""


class CallbackError(RuntimeError):
    """A callback raised; the run saved its checkpoint and stopped."""


class CheckpointEvery(Callback):
    """`agent.save` to `<run_dir>/checkpoints/step_<n>.pt` every `every` environment steps, keeping the
    newest `keep_last` (0: all); with `include_buffer`, replay buffers too."""

    def __init__(self, every: int, keep_last: int = 3, include_buffer: bool = False):
        if every < 1 or keep_last < 0:
            raise ValueError(f"CheckpointEvery(every={every}, keep_last={keep_last}): every must be >= 1 and "
                             "keep_last >= 0 (0 keeps all).")
        self.every, self.keep_last, self.include_buffer = every, keep_last, include_buffer
        self.next_at: int | None = None
        self.saved: list[Path] = []

    def on_step(self, agent: Any, step: int) -> None:
        if self.next_at is None:
            self.next_at = (step // self.every + 1) * self.every
        if step < self.next_at:
            return
        self.next_at = (step // self.every + 1) * self.every
        folder = Path(agent.run_dir) / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        self.saved.append(agent.save(folder / f"step_{step}.pt", include_buffer=self.include_buffer))
        while self.keep_last and len(self.saved) > self.keep_last:
            self.saved.pop(0).unlink(missing_ok=True)


class StopAtReturn(Callback):
    """Stop once an evaluation's mean return reaches `threshold` (SB3's StopTrainingOnRewardThreshold)."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def on_evaluation(self, agent: Any, step: int, mean_return: float) -> bool:
        return mean_return < self.threshold


class StopWhenNoImprovement(Callback):
    """Stop after `patience` evaluations in a row without a new best mean return, once `min_evaluations`
    have run (SB3's StopTrainingOnNoModelImprovement)."""

    def __init__(self, patience: int = 5, min_evaluations: int = 0):
        self.patience, self.min_evaluations = patience, min_evaluations
        self.best, self.evaluations, self.since_best = -math.inf, 0, 0

    def on_evaluation(self, agent: Any, step: int, mean_return: float) -> bool:
        self.evaluations += 1
        if mean_return > self.best:
            self.best, self.since_best = mean_return, 0
        else:
            self.since_best += 1
        return not (self.evaluations > self.min_evaluations and self.since_best >= self.patience)


class CaptureVideo(Callback):
    """At each evaluation, one greedy episode as `<run_dir>/videos/step_<n>-0.mp4` (`envs.render`)."""

    def __init__(self, fps: int = 30):
        self.fps = fps

    def on_evaluation(self, agent: Any, step: int, mean_return: float) -> None:
        from envs.render import record_episodes

        record_episodes(lambda **kw: agent.member(0).make_eval_env(num_envs=1, seed=20_000 + step, **kw),
                        lambda obs: agent.member(0).predict(obs, deterministic=True), agent.env_id,
                        Path(agent.run_dirs[0]) / "videos", prefix=f"step_{step}", fps=self.fps)
