"""Checkpoint files: written atomically, read with errors that name the file and the reason."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 2
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not one of ours. The file is never modified."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write to a temporary file, then rename: a crash mid-write never leaves a half checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({"format_version": FORMAT_VERSION, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def resolve_checkpoint(path: str | Path, prefer: str = CHECKPOINT_NAME) -> Path:
    """A run directory resolves to the checkpoint inside it (`prefer`, else the other kind)."""
    path = Path(path)
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = resolve_checkpoint(path)
    try:
        # weights_only=False: checkpoints hold numpy RNG states and pickled environment states.
        # Only load checkpoints you trust, as with any pickle.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"Checkpoint '{path}' is corrupt or not a checkpoint ({type(exc).__name__}: {exc}). "
            "It was left untouched; resume from an earlier copy or start a new run."
        ) from exc
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"'{path}' is a torch file but not a checkpoint of this project (no format_version).")
    if payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint '{path}' has format {payload['format_version']}, newer than this version reads "
            f"({FORMAT_VERSION}). Upgrade the package."
        )
    return payload
