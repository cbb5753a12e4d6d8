"""Ctrl-C that stops a training loop at a step boundary instead of mid-update."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class GracefulInterrupt:
    """Inside `with`, the first SIGINT only sets `requested`; the loop finishes its step,
    saves a checkpoint and raises KeyboardInterrupt itself, so the checkpoint is consistent
    (resuming it matches an uninterrupted run). A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving a checkpoint (press again to stop at once)", flush=True)

    def __enter__(self) -> "GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
