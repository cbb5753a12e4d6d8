"""TensorBoard logging under `runs/<env>__<algo>__<seed>__<time>/` and the terminal progress bar.

Agents hand the logger dicts of tensors or numbers and never touch the writer. Tags live in
fixed namespaces: `charts/` (returns, lengths, SPS, epsilon, ...), `losses/`, `eval/`,
`perf/` (where the time goes).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

TAG_NAMESPACES = ("charts/", "losses/", "eval/", "perf/", "text/")


def run_name(env_id: str, algo: str, seed: int | None) -> str:
    """`<env>__<algo>__<seed>__<time>`; '/' in ids such as `ALE/Pong-v5` becomes '-'."""
    return f"{env_id.replace('/', '-')}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def _scalar_values(scalars: Mapping[str, torch.Tensor | float | int]) -> dict[str, float]:
    """One host sync for all tensor values instead of one per tag."""
    tensors = {k: v for k, v in scalars.items() if isinstance(v, torch.Tensor)}
    values = {k: float(v) for k, v in scalars.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        stacked = torch.stack([t.detach().reshape(()).float() for t in tensors.values()]).cpu().tolist()
        values.update(zip(tensors.keys(), stacked))
    return values


class Logger:
    """A thin wrapper over `SummaryWriter` that checks tag namespaces and records hyperparameters."""

    def __init__(self, run_dir: str | Path, hparams: Mapping[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # The writer's background thread takes events from a queue; at torch's default of 10 a log of
        # 16 scalars blocked the training loop on that thread for about a millisecond every time.
        self.writer = SummaryWriter(str(self.run_dir), max_queue=1000)
        if hparams:
            rows = "\n".join(f"|{k}|{v}|" for k, v in hparams.items())
            self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")
            (self.run_dir / "config.json").write_text(json.dumps(dict(hparams), indent=2, default=str))

    def log(self, step: int, scalars: Mapping[str, torch.Tensor | float | int]) -> dict[str, float]:
        """Write scalars at `step`; returns them as floats (for the progress bar)."""
        values = _scalar_values(scalars)
        for tag, value in values.items():
            if not tag.startswith(TAG_NAMESPACES):
                raise ValueError(f"Tag {tag!r} is outside the fixed namespaces {TAG_NAMESPACES}")
            self.writer.add_scalar(tag, value, step)
        return values

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class ProgressBar:
    """Steps, SPS and the recent mean episodic return on one terminal line."""

    def __init__(self, total_steps: int, initial: int = 0, enabled: bool = True):
        self.bar = tqdm(total=total_steps, initial=initial, unit="step", dynamic_ncols=True,
                        disable=not enabled, file=sys.stdout, mininterval=1.0)

    @property
    def enabled(self) -> bool:
        return not self.bar.disable

    def update(self, step: int, sps: float, mean_return: float | None) -> None:
        self.bar.update(step - self.bar.n)
        ret = "n/a" if mean_return is None else f"{mean_return:.1f}"
        self.bar.set_postfix_str(f"SPS={sps:,.0f} return(last100)={ret}", refresh=False)

    def close(self) -> None:
        self.bar.close()
