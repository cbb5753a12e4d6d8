"""What a training run calls back into, for code that watches or steers a run from outside the agent
(a hyperparameter search, a script's own stopping rule).

A callback subclasses `Callback` and overrides the hooks it needs; `learn(..., callbacks=[...])`
calls them in order. A hook that returns False stops the run at the next step boundary, which then
ends as a finished run does (checkpoint, model, summary).
"""

from __future__ import annotations

from typing import Any


class Callback:
    def on_training_start(self, agent: Any) -> None:
        """Once, after the run directories exist and before the first step."""

    def on_evaluation(self, agent: Any, step: int, mean_return: float) -> bool | None:
        """After each periodic evaluation (`eval_every`): the step and the greedy mean return (the mean
        over seeds when several train at once). False stops the run."""
        return None

    def on_training_end(self, agent: Any, summary: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Once, after the summary is written (not after Ctrl-C or an error)."""
