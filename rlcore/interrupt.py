"""Ctrl-C and SIGTERM that stop a training loop at a step boundary instead of mid-update."""

from __future__ import annotations

import signal
import threading
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)  # SIGTERM: what timeout, docker stop, Slurm and Kubernetes send


class Terminated(KeyboardInterrupt):
    """The run stopped on SIGTERM (the CLI exits with 143, as a process killed by it would)."""


class GracefulInterrupt:
    """Inside `with`, the first SIGINT or SIGTERM only sets `requested` (the signal's number); the
    loop finishes its step, saves a checkpoint and raises KeyboardInterrupt (`Terminated` for
    SIGTERM) itself, so the checkpoint is consistent (resuming it matches an uninterrupted run).
    A second signal interrupts at once."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        self.requested = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: stopping after this step and saving a checkpoint (again to stop at once)", flush=True)

    def stop(self) -> KeyboardInterrupt:
        """The exception that ends an interrupted run."""
        return Terminated() if self.requested == signal.SIGTERM else KeyboardInterrupt()

    def __enter__(self) -> "GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            self._previous = {s: signal.signal(s, self._handler) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}
