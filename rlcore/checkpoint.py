"""Checkpoint files: written atomically, read without running code, with errors that name the file
and the reason.

A checkpoint holds only tensors, numbers, strings, booleans, None, and lists, tuples and dicts of
them: `save_checkpoint` refuses anything else, and `load_checkpoint` reads with
`torch.load(weights_only=True)`, which builds nothing but those, then checks the result the same
way. Loading a file therefore never runs code from it. Files of formats 1 and 2 (and files of
other programs) hold pickled Python objects, whose loading can run arbitrary code: they are read
only when the caller trusts the file (`trust=True`, the CLI's `--trust-checkpoint`), with a warning.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 3
SAFE_LEAVES = (torch.Tensor, str, int, float, bool, type(None))
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
BEST_MODEL_NAME = "best_model.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not one of ours. The file is never modified."""


def unsafe_entries(obj: Any, where: str = "") -> list[str]:
    """Where `obj` holds anything but tensors, numbers, strings, booleans, None and containers of them."""
    if isinstance(obj, dict):
        return [bad for key, value in obj.items() for bad in
                ([f"{where} (a {type(key).__name__} key)"] if not isinstance(key, (str, int)) else [])
                + unsafe_entries(value, f"{where}.{key}" if where else str(key))]
    if isinstance(obj, (list, tuple)):
        return [bad for i, value in enumerate(obj) for bad in unsafe_entries(value, f"{where}[{i}]")]
    return [] if isinstance(obj, SAFE_LEAVES) else [f"{where} (a {type(obj).__name__})"]


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write to a temporary file, then rename: a crash mid-write never leaves a half checkpoint."""
    unsafe = unsafe_entries(payload)
    if unsafe:  # a bug here, not the user's: the format holds no pickled objects
        raise TypeError(f"A checkpoint holds only tensors, numbers, strings and containers of them; got {unsafe[:3]}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({"format_version": FORMAT_VERSION, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def resolve_checkpoint(path: str | Path, prefer: str = CHECKPOINT_NAME, best: bool = False) -> Path:
    """A run directory resolves to the checkpoint inside it (`prefer`, else the other kind); with
    `best`, a run directory (or a file in one) to its `best_model.pt`, which must exist."""
    path = Path(path)
    if best:
        run = path if path.is_dir() else path.parent
        if not (run / BEST_MODEL_NAME).is_file():
            raise CheckpointError(f"Run '{run}' has no {BEST_MODEL_NAME}: it did not evaluate while training. Train with "
                                  "--eval-every STEPS (Python: learn(eval_every=...)) to keep the best model, or leave "
                                  "out --best to use the final one.")
        return run / BEST_MODEL_NAME
    if path.is_dir():
        for name in (prefer, CHECKPOINT_NAME, MODEL_NAME):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"No checkpoint in run directory '{path}': expected '{CHECKPOINT_NAME}' or '{MODEL_NAME}'. "
            "Runs write them during and at the end of `rl train`."
        )
    if not path.exists():
        raise CheckpointError(f"Checkpoint '{path}' does not exist. Pass a run directory or a .pt file written by `save`.")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", trust: bool = False) -> dict[str, Any]:
    """The payload `save_checkpoint` wrote, read without running code from the file. `trust=True`
    also reads files that hold pickled objects (formats 1 and 2), which can run code: only for
    files whose source you trust."""
    path = resolve_checkpoint(path)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-short one has lost its directory
        raise CheckpointError(f"Checkpoint '{path}' is corrupt or not a checkpoint (not a complete torch file: cut short, "
                              "or something else). It was left untouched; resume from an earlier copy or start a new run.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or pickled files
        pickled = "Weights only load failed" in str(exc)  # torch refused a pickled object, read nothing
        if not pickled:
            raise CheckpointError(
                f"Checkpoint '{path}' is corrupt or not a checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
                "It was left untouched; resume from an earlier copy or start a new run."
            ) from None
        if not trust:
            raise CheckpointError(
                f"Checkpoint '{path}' holds pickled Python objects (an older checkpoint format, or a file this project "
                "did not write): loading it could run code from it, so it was not loaded. If you trust its source, "
                "pass --trust-checkpoint (Python: trust=True); saving it again writes the safe format."
            ) from None
        warnings.warn(f"Loading '{path}' with pickle (trust=True): a file from an untrusted source could run code "
                      "this way. Saving the agent again writes the format that cannot.", RuntimeWarning, stacklevel=2)
        try:
            payload = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as exc2:
            raise CheckpointError(f"Checkpoint '{path}' is corrupt ({type(exc2).__name__}: {exc2}). It was left "
                                  "untouched; resume from an earlier copy or start a new run.") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"'{path}' is a torch file but not a checkpoint of this project (no format_version).")
    if not isinstance(payload["format_version"], int) or payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint '{path}' has format {payload['format_version']!r}, newer than this version reads "
            f"({FORMAT_VERSION}). Upgrade the package."
        )
    unsafe = [] if trust else unsafe_entries(payload)
    if unsafe:  # e.g. raw bytes, which an environment would unpickle
        raise CheckpointError(f"Checkpoint '{path}' holds entries this format never writes ({', '.join(unsafe[:3])}); "
                              "it was not loaded. If you trust its source, pass --trust-checkpoint (Python: trust=True).")
    return payload
