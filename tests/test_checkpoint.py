"""rlcore.checkpoint: atomic writes, loads that run no code from the file, errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rlcore import checkpoint as checkpoint_module
from rlcore.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint, unsafe_entries


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


# ----- loading runs no code ------------------------------------------------------------------
class Evil:
    """Unpickling this runs `touch <marker>`: what a hostile checkpoint can do to `torch.load(weights_only=False)`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "algo": "ppo", "env_id": "CartPole-v1", "x": Evil(marker)}, path)
    return path, marker


def test_a_pickle_payload_runs_nothing_through_load_eval_or_resume(tmp_path: Path, capsys):
    from agents import PPO
    from agents.cli import main

    path, marker = _evil_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="pickled Python objects.*--trust-checkpoint"):
        PPO.load(path)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-checkpoint" in err
    assert main(["train", "ppo", "CartPole-v1", "--resume", str(path), "--no-progress"]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_bytes_in_a_weights_only_file_are_refused_unless_trusted(tmp_path: Path):
    """Raw bytes pass torch's weights-only reader; the old gymnasium adapter state unpickled them."""
    torch.save({"format_version": FORMAT_VERSION, "env_state": {"envs": b"\x80\x04K\x01."}}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"entries this format never writes \(env_state.envs \(a bytes\)\)"):
        load_checkpoint(tmp_path / "b.pt")
    assert load_checkpoint(tmp_path / "b.pt", trust=True)["env_state"]["envs"] == b"\x80\x04K\x01."


def test_trusting_an_old_checkpoint_loads_it_with_a_warning(tmp_path: Path):
    torch.save({"format_version": 2, "rng": np.random.get_state()}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(tmp_path / "old.pt")
    with pytest.warns(RuntimeWarning, match="with pickle"):
        assert load_checkpoint(tmp_path / "old.pt", trust=True)["format_version"] == 2


def test_saving_refuses_what_the_format_cannot_hold(tmp_path: Path):
    with pytest.raises(TypeError, match=r"x \(a ndarray\)"):
        save_checkpoint(tmp_path / "c.pt", {"x": np.zeros(2)})
    assert not (tmp_path / "c.pt").exists()


PPO_SMALL = {"n_steps": 32, "batch_size": 32}


@pytest.mark.parametrize("algo, env_id, settings", [
    ("ppo", "CartPole-v1", {"backend": "gymnasium", **PPO_SMALL}), ("dqn", "CartPole-v1", {"learning_starts": 50}),
    ("ppo", "Pendulum-v1", {"async_rollout": True, "normalize_obs": True, **PPO_SMALL}), ("a2c", "CartPole-v1", {}),
])
def test_every_agents_checkpoint_reads_without_pickle(tmp_path: Path, algo, env_id, settings):
    from agents import AGENTS

    agent = AGENTS[algo](env_id, checkpoint_interval=0, num_envs=2, **settings)
    agent.learn(256, run_dir=tmp_path, progress=False)
    for name in ("checkpoint.pt", "model.pt"):
        torch.load(tmp_path / name, weights_only=True)  # raises on anything but tensors and plain containers
        assert not unsafe_entries(load_checkpoint(tmp_path / name))
