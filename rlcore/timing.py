"""Where a training loop's time goes, by phase, for TensorBoard's `perf/` tags."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Timing:
    """Where a training loop's time goes: `with timing.phase("env"): ...`, reported as fractions
    (`perf/<phase>_fraction`) at each log.

    Host wall-clock: exact on the CPU; on an accelerator a phase can absorb the queued work of
    the one before it, so read those figures as indicative."""

    def __init__(self, *phases: str):
        self.seconds = dict.fromkeys(phases, 0.0)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        total = sum(self.seconds.values()) or 1.0
        out = {f"perf/{name}_fraction": s / total for name, s in self.seconds.items()}
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        return out
