"""Collecting the next rollout while the update learns from the last one (PPO's `async_rollout`).

Generation and learning overlap, one update off-policy (as in Noukhovitch et al. 2024,
"Asynchronous RLHF"): the collector acts with its own copy of the policy, holding the weights
from before the update in progress; the buffer keeps that policy's log-probabilities, so PPO's
ratio corrects for the lag. The agent uses it through one object, `AsyncRollout`:

    rollouts.start(update, optimizer, buffer, shared)      # when learn starts
    round, buffer = rollouts.take(obs, buffer)             # the round collected beside the last update
    stats = rollouts.update(update, buffer, step, kl_coef, next_obs, timing)  # beside the next round
    rollouts.stop()                                        # when learn ends (or fails)

On a CPU (Linux) the update runs in a forked `LearnerProcess` while this process collects;
elsewhere the round is collected in a background thread while this process updates. A seeded
run is reproducible whatever the timing: the learner shuffles minibatches with its own
generator (`shuffle`) and the collector samples with the global RNG. A round collected but not
yet trained on is in `state_dict`, so a checkpoint taken between updates resumes exactly.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rlcore.rollout import RolloutBuffer
from rlcore.timing import Timing


class Round(NamedTuple):
    """A collected rollout's results besides its buffer."""

    obs: Tensor | None
    """The observation after the round (None in rounds saved by format-1 checkpoints, whose agent
    observation already is it)."""
    stats: dict[str, Tensor]
    """Statistics to log with the update (a text round's reward, length and KL)."""
    texts: dict[str, list] | None
    """A text round's prompts, completions and rewards."""
    kl: float | None
    """The round's mean per-episode KL for the adaptive KL controller (None: not measured)."""


CollectRound = Callable[[nn.Module, RolloutBuffer, Tensor], Round]
"""(policy, buffer, obs) -> the round `policy` collected into `buffer` from `obs`, advantages computed."""
Update = Callable[[RolloutBuffer, int, float | None], dict[str, Tensor]]
"""(buffer, environment step, KL coefficient) -> the update's statistics."""


class AsyncRollout:
    """The collector (its policy copy `collector`, its buffer, the round it holds) and, while
    `learn` runs, the learner process or the collector thread."""

    def __init__(self, collect_round: CollectRound, policy: nn.Module, collector: nn.Module, buffer: RolloutBuffer,
                 seed: int):
        self.collect_round, self.collector, self.buffer = collect_round, collector, buffer
        self.device = buffer.device
        self.shuffle = torch.Generator(device=self.device).manual_seed(seed)
        """The learner's minibatch permutations."""
        self.round: Round | None = None  # collected, not yet taken
        self.use_process: bool | None = None
        """Run updates in a learner process: None decides (`learner_process_available`)."""
        # The tensors `sync` copies, listed once (listing them costs more than copying them).
        self._weights = ([*collector.parameters(), *collector.buffers()], [*policy.parameters(), *policy.buffers()])
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._learner: LearnerProcess | None = None
        self._threads = torch.get_num_threads()

    @property
    def pending(self) -> bool:
        """A round is collected and not yet taken."""
        return self.round is not None

    # ----- around learn ------------------------------------------------------------------------
    def start(self, update: Update, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
              shared: list[Tensor]) -> None:
        """Give the collector the learner's weights (they may have been loaded since it copied them)
        and, on a CPU, fork the learner process: `shared` (the policy's parameters and buffers, the
        NaN guard's record) and both rollout buffers go to shared memory first."""
        self.sync()
        self._threads = torch.get_num_threads()
        buffers = [buffer, self.buffer]
        tensors = [*shared, *(t for b in buffers for t in b.tensors())]
        process = self.use_process if self.use_process is not None else learner_process_available(self.device, tensors)
        if process:
            self._learner = LearnerProcess(update, optimizer, self.shuffle, buffers, tensors)

    def stop(self, quiet: bool = False) -> None:
        """Let the update in flight finish, copy the learner's optimiser state here and stop it,
        wait for the collector thread, give the torch threads back. `quiet`: an error on its way
        is the one to report, so this one's are dropped."""
        try:
            if self._learner is not None:
                self._learner.close()
        except Exception:
            if not quiet:
                raise
        finally:
            self._learner = None
            self._join(raise_error=False)
            torch.set_num_threads(self._threads)

    def pull(self) -> None:
        """Mid-run the optimiser's state is the learner process's: copy it here (before a save)."""
        if self._learner is not None:
            self._learner.pull()

    # ----- each round --------------------------------------------------------------------------
    def collect(self, obs: Tensor) -> None:
        """Collect the next round here and now, from `obs`."""
        self.round = self.collect_round(self.collector, self.buffer, obs)

    def take(self, obs: Tensor, buffer: RolloutBuffer) -> tuple[Round, RolloutBuffer]:
        """The collected round (collected now from `obs` if none is) and its buffer; the collector
        keeps `buffer`, trained on, for the next round."""
        if self.round is None:
            self.collect(obs)
        round, self.round = self.round, None
        filled, self.buffer = self.buffer, buffer
        return round, filled

    def update(self, update: Update, buffer: RolloutBuffer, step: int, kl_coef: float | None,
               next_obs: Tensor | None, timing: Timing) -> dict[str, Tensor]:
        """`update(buffer, step, kl_coef)` while the next round is collected from `next_obs` (None: this
        is the last update, nothing to collect); then the collector gets the new weights."""
        overlap = next_obs is not None
        self._split_threads(overlap)
        if self._learner is not None:
            self._learner.start(buffer, step, kl_coef)
            if overlap:
                with timing.phase("rollout"):
                    self.collect(next_obs)
            with timing.phase("update"):  # waiting for the update
                stats = self._learner.wait()
        else:
            with timing.phase("update"):
                if overlap:
                    self._thread = threading.Thread(target=self._collect_in_thread, args=(next_obs,), name="rollout",
                                                    daemon=True)
                    self._thread.start()
                stats = update(buffer, step, kl_coef)
        with timing.phase("rollout"):  # waiting for the background round (a thread's)
            self._join(raise_error=True)
        return stats

    def sync(self) -> None:
        """Give the collector's policy the learner's current weights."""
        with torch.no_grad():
            torch._foreach_copy_(*self._weights)

    def _collect_in_thread(self, obs: Tensor) -> None:
        try:
            self.collect(obs)
        except BaseException as e:  # re-raised in the learner's thread by `_join`
            self._error = e

    def _join(self, raise_error: bool) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error
        self.sync()

    def _split_threads(self, beside: bool) -> None:
        """On a CPU, while a round is collected beside the update, the collector and the learner each
        get half the torch threads (at least one); the first round and the last update, which run
        alone, get all of them (a `LearnerProcess` takes the count this process has when the update
        starts). The count changes only at those two ends: switching every round left the idle
        OpenMP workers spinning on the other side's cores."""
        n = max(self._threads // 2, 1) if beside and self.device.type == "cpu" else self._threads
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)

    # ----- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"pending": self.round is not None, "shuffle": self.shuffle.get_state()}
        if self.round is not None:
            state.update(buffer=self.buffer.state_dict(), obs=self.round.obs, rollout_stats=self.round.stats,
                         samples=self.round.texts, kl_update=self.round.kl)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shuffle.set_state(state["shuffle"])
        self.round = None
        if state["pending"]:
            self.buffer.load_state_dict(state["buffer"])
            kl = state["kl_update"]
            if isinstance(kl, tuple):  # format 1: (KL, episodes) held for the controller
                kl = kl[0]
            self.round = Round(state.get("obs"), state["rollout_stats"], state["samples"], kl)


def learner_process_available(device: torch.device, tensors: list[Tensor], shm_free: int | None = None) -> bool:
    """Whether `async_rollout` runs its updates in a `LearnerProcess`: on a CPU where processes fork
    (Linux) and /dev/shm (`shm_free` bytes; measured when None) can hold `tensors`. On an accelerator
    the update's kernels run beside the collector thread's anyway, and a process holding CUDA cannot
    fork. A container's /dev/shm is often small (Docker: 64 MB): then the update stays in this
    process, with a warning."""
    if device.type != "cpu" or not sys.platform.startswith("linux"):
        return False
    needed = sum(t.untyped_storage().nbytes() for t in tensors if not t.is_shared())
    if shm_free is None:
        try:
            stat = os.statvfs("/dev/shm")
            shm_free = stat.f_bavail * stat.f_frsize
        except OSError:
            shm_free = 0
    if needed > shm_free // 2:  # leave room for everything else there
        warnings.warn(f"async_rollout: /dev/shm has {shm_free / 2**20:.0f} MB free and the learner process needs "
                      f"{needed / 2**20:.0f} MB of shared memory, so updates run beside the collector in this process "
                      "(slower on a CPU: they share Python's GIL). Give it more, e.g. docker run --shm-size=2g.",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


class LearnerProcess:
    """Each update in a child process, forked when `learn` starts, while this process collects the
    next round. Why a process: in one process the collector thread and the update contend for
    Python's GIL, each making thousands of small torch calls a round.

    Nothing large crosses the pipe. Before the fork `tensors` (the policy's parameters and
    buffers, both rollout buffers, the NaN guard's record) move to shared memory, so the child's
    optimiser steps change this process's weights in place. Per update this process sends the
    buffer's index and flags, the step and the KL coefficient; the child returns the update's
    statistics and the minibatch generator's state. The optimiser's state stays in the child
    until `pull` copies it back (before a checkpoint, and when `learn` ends).

    The child runs as many torch threads as this process has when an update starts. It is forked
    from a new thread: GNU OpenMP is not fork-safe, and a child forked from a thread that has run
    parallel regions hangs in its first one of several threads (its pool's workers do not exist
    in the child); a thread that never ran one has no pool to inherit. The child ignores Ctrl-C
    (this process handles it: the update in flight finishes, then the checkpoint is saved) and
    leaves by `os._exit`, never running this process's exit handlers (the TensorBoard writers').
    """

    def __init__(self, update: Update, optimizer: torch.optim.Optimizer, shuffle: torch.Generator,
                 buffers: list[RolloutBuffer], tensors: list[Tensor]):
        self.update, self.optimizer, self.shuffle, self.buffers = update, optimizer, shuffle, buffers
        for tensor in tensors:
            tensor.share_memory_()
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        # Hugging Face tokenizers warn at every fork once they have used threads, unless this is set.
        quiet = "TOKENIZERS_PARALLELISM" not in os.environ
        if quiet:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        try:
            self._process = context.Process(target=self._serve, args=(child,), name="learner", daemon=True)
            errors: list[BaseException] = []

            def fork() -> None:
                try:
                    self._process.start()
                except BaseException as e:  # raised here, in the caller's thread
                    errors.append(e)

            forking = threading.Thread(target=fork, name="fork learner")
            forking.start()
            forking.join()
            if errors:
                raise errors[0]
        finally:
            if quiet:
                del os.environ["TOKENIZERS_PARALLELISM"]
            child.close()
        self.busy = False

    # ----- this process ----------------------------------------------------------------------
    def start(self, buffer: RolloutBuffer, step: int, kl_coef: float | None) -> None:
        """Update on `buffer` in the child; `wait` returns the statistics."""
        index = next(i for i, b in enumerate(self.buffers) if b is buffer)
        self._send(("update", index, buffer.flags(), step, kl_coef, torch.get_num_threads()))
        self.busy = True

    def wait(self) -> dict[str, Any]:
        self.busy = False
        stats, shuffle = self._receive()
        self.shuffle.set_state(torch.frombuffer(bytearray(shuffle), dtype=torch.uint8))
        return {k: torch.tensor(v) if isinstance(v, list) else v for k, v in stats.items()}

    def pull(self) -> None:
        """Copy the child's optimiser state here."""
        if self.busy:
            self.wait()
        self._send(("state",))
        self.optimizer.load_state_dict(self._receive())

    def close(self) -> None:
        """Let the update in flight finish, copy the optimiser state here, stop the child (killed if
        any of that fails: it died, or its update raised)."""
        try:
            self.pull()
            self._send(("stop",))
            self._process.join(10)
        finally:
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._conn.close()

    def _send(self, message: tuple) -> None:
        self._conn.send_bytes(pickle.dumps(message))

    def _receive(self) -> Any:
        try:
            kind, value = pickle.loads(self._conn.recv_bytes())
        except EOFError:
            self._process.join(1)
            raise RuntimeError(f"The learner process of async_rollout ended unexpectedly (exit code "
                               f"{self._process.exitcode}); the last checkpoint is the one to resume from.") from None
        if kind == "error":
            raise value
        return value

    # ----- the child ---------------------------------------------------------------------------
    def _serve(self, conn: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while True:
                message = pickle.loads(conn.recv_bytes())
                if message[0] == "stop":
                    break
                try:
                    if message[0] == "state":
                        reply = self.optimizer.state_dict()
                    else:
                        _, index, flags, step, kl_coef, threads = message
                        if torch.get_num_threads() != threads:
                            torch.set_num_threads(threads)
                        buffer = self.buffers[index]
                        buffer.set_flags(flags)
                        # Numbers and bytes, not tensors: unpickling a tensor costs a torch.load each.
                        stats = {k: v.tolist() if isinstance(v, Tensor) else v
                                 for k, v in self.update(buffer, step, kl_coef).items()}
                        reply = (stats, self.shuffle.get_state().numpy().tobytes())
                    conn.send_bytes(pickle.dumps(("done", reply)))
                except Exception as e:
                    try:
                        conn.send_bytes(pickle.dumps(("error", e)))
                    except Exception:  # an error that does not pickle: its text
                        conn.send_bytes(pickle.dumps(("error", RuntimeError(traceback.format_exc()))))
        finally:
            os._exit(0)


__all__ = ["AsyncRollout", "CollectRound", "LearnerProcess", "Round", "Update", "learner_process_available"]
