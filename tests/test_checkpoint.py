"""rlcore.checkpoint: atomic writes and errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlcore import checkpoint as checkpoint_module
from rlcore.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint


def test_save_checkpoint_is_atomic(tmp_path: Path):
    path = save_checkpoint(tmp_path / "sub" / "checkpoint.pt", {"algo": "dqn", "w": torch.arange(3)})
    assert path == tmp_path / "sub" / "checkpoint.pt"
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no .tmp left
    payload = load_checkpoint(path)
    assert payload["format_version"] == FORMAT_VERSION and payload["algo"] == "dqn"
    assert torch.equal(payload["w"], torch.arange(3))


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path: Path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    before = path.read_bytes()

    def crash(obj, f):  # a write that dies half way, as on a full disk or a kill
        Path(f).write_bytes(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before


def test_load_checkpoint_missing(tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="No checkpoint in run directory"):
        load_checkpoint(tmp_path)


def test_load_checkpoint_corrupt_file_is_left_untouched(tmp_path: Path):
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.zeros(100)}).read_bytes()
    for name, data in [("truncated.pt", good[: len(good) // 2]), ("garbage.pt", b"not a checkpoint\n")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="corrupt"):
            load_checkpoint(path)
        assert path.read_bytes() == data


def test_load_checkpoint_foreign_torch_file(tmp_path: Path):
    for name, obj in [("dict.pt", {"state_dict": {}}), ("tensor.pt", torch.zeros(2))]:
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
            load_checkpoint(tmp_path / name)


def test_load_checkpoint_newer_format(tmp_path: Path):
    torch.save({"format_version": FORMAT_VERSION + 1}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="newer than this version reads"):
        load_checkpoint(tmp_path / "future.pt")
