"""rlcore pieces alone, against hand-computed values: target-network updates, schedules,
seeding, the logger, configs, checkpoints and torsos."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from agents import DQNConfig
from rlcore import checkpoint as checkpoint_module
from rlcore.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from rlcore.config import ConfigError, build_config, field_docs
from rlcore.logger import Logger, run_name
from rlcore.nets import NatureCNN, hard_update, make_torso, polyak_update
from rlcore.schedules import linear_schedule
from rlcore.seeding import rng_state, seed_everything, set_rng_state


# ----- target networks ---------------------------------------------------------------------
def _net(weight: float, bias: float, running_mean: float) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(weight)
        net[0].bias.fill_(bias)
        net[1].weight.fill_(1.0)
        net[1].bias.fill_(0.0)
        net[1].running_mean.fill_(running_mean)
    return net


def test_hard_update_copies_parameters_and_buffers_exactly():
    target, online = _net(2.0, -1.0, 0.0), _net(12.0, 1.0, 5.0)
    hard_update(target, online)
    for (name, t), o in zip(target.state_dict().items(), online.state_dict().values()):
        assert torch.equal(t, o), name
    # A copy, not shared storage: training the online net later must not move the target.
    with torch.no_grad():
        online[0].weight.add_(1.0)
    assert torch.equal(target[0].weight, torch.full((1, 2), 12.0))


@pytest.mark.parametrize("tau, weight, bias", [(0.1, 3.0, -0.8), (1.0, 12.0, 1.0)])
def test_polyak_update_by_hand(tau, weight, bias):
    # (1 - tau) * target + tau * online: 0.9 * 2 + 0.1 * 12 = 3.0 and 0.9 * -1 + 0.1 * 1 = -0.8.
    target, online = _net(2.0, -1.0, 0.0), _net(12.0, 1.0, 5.0)
    polyak_update(target, online, tau)
    assert torch.allclose(target[0].weight, torch.full((1, 2), weight))
    assert torch.allclose(target[0].bias, torch.full((1,), bias))
    assert torch.equal(target[1].running_mean, torch.full((1,), 5.0))  # buffers are copied, not averaged
    assert torch.equal(online[0].weight, torch.full((1, 2), 12.0))  # the online net is untouched


@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_polyak_update_every_parameter(tau):
    torch.manual_seed(0)
    target, online = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), nn.Sequential(
        nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(target, online, tau)
    for t, t0, o in zip(target.parameters(), before, online.parameters()):
        assert torch.allclose(t, (1 - tau) * t0 + tau * o, atol=1e-7)


# ----- schedules ---------------------------------------------------------------------------
@pytest.mark.parametrize("progress, expected", [(0.0, 1.0), (0.05, 0.525), (0.1, 0.05), (0.5, 0.05), (1.0, 0.05)])
def test_linear_schedule(progress, expected):
    assert linear_schedule(1.0, 0.05, 0.1, progress) == pytest.approx(expected)


def test_linear_schedule_zero_fraction_is_the_end_value():
    assert linear_schedule(1.0, 0.05, 0.0, 0.0) == 0.05
    assert linear_schedule(0.4, 1.0, 1.0, 0.25) == pytest.approx(0.55)  # PER beta annealing


# ----- seeding -----------------------------------------------------------------------------
def _draws() -> tuple[torch.Tensor, np.ndarray, float]:
    return torch.rand(3), np.random.rand(3), random.random()


def _assert_same(a, b) -> None:
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_seed_everything_reproduces_draws():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    _assert_same(first, _draws())
    seed_everything(124)
    assert not torch.equal(first[0], _draws()[0])


def test_rng_state_round_trip():
    seed_everything(7)
    state = rng_state()
    first = _draws()
    _draws()  # move every generator on
    set_rng_state(state)
    _assert_same(first, _draws())


# ----- logger ------------------------------------------------------------------------------
def test_logger_writes_events_and_config(tmp_path: Path):
    logger = Logger(tmp_path / "run", {"algo": "dqn", "gamma": 0.99, "hidden_sizes": (32, 32)})
    values = logger.log(5, {"charts/episodic_return": torch.tensor(1.5), "losses/td_loss": 2, "perf/x": 0.25})
    assert values == {"charts/episodic_return": 1.5, "losses/td_loss": 2.0, "perf/x": 0.25}
    assert all(type(v) is float for v in values.values())
    with pytest.raises(ValueError, match="namespaces"):
        logger.log(6, {"episodic_return": 1.0})
    with pytest.raises(ValueError, match="namespaces"):
        logger.log(6, {"chart/typo": 1.0})
    logger.close()
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config == {"algo": "dqn", "gamma": 0.99, "hidden_sizes": [32, 32]}


def test_run_name_format():
    assert re.fullmatch(r"ALE-Pong-v5__dqn__3__\d{8}-\d{6}", run_name("ALE/Pong-v5", "dqn", 3))
    assert run_name("CartPole-v1", "dqn", 0).startswith("CartPole-v1__dqn__0__")


# ----- configs -----------------------------------------------------------------------------
def test_build_config_unknown_name_lists_valid_names_and_suggests():
    with pytest.raises(ConfigError) as err:
        build_config(DQNConfig, {"learning_rat": 1e-3})
    message = str(err.value)
    assert "'learning_rat'" in message and "did you mean 'learning_rate'" in message
    assert all(f.name in message for f in dataclasses.fields(DQNConfig))
    with pytest.raises(ConfigError, match="did you mean 'gamma'"):
        build_config(DQNConfig, {}, presets={"gamm": 0.9})  # a typo in a preset fails too


def test_build_config_overrides_win_over_presets():
    cfg = build_config(DQNConfig, {"gamma": 0.9}, presets={"gamma": 0.5, "batch_size": 8})
    assert cfg.gamma == 0.9 and cfg.batch_size == 8


def test_config_value_error_names_field_and_constraint():
    with pytest.raises(ConfigError, match=r"DQNConfig.gamma = 2 is invalid: must be in \(0, 1\]"):
        DQNConfig(gamma=2)


def test_every_dqn_field_is_documented():
    docs = field_docs(DQNConfig)
    missing = [f.name for f in dataclasses.fields(DQNConfig) if not docs.get(f.name, "").strip()]
    assert not missing, f"fields without a docstring: {missing}"
    assert docs["learning_rate"] == "Adam step size (annealed linearly to 0 when anneal_lr)."


# ----- checkpoints -------------------------------------------------------------------------
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


# ----- torsos ------------------------------------------------------------------------------
def test_nature_cnn_on_uint8_frames():
    torch.manual_seed(0)
    cnn = NatureCNN(4)
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    out = cnn(frames)
    assert out.shape == (2, 512) and cnn.out_dim == 512
    assert torch.allclose(out, cnn(frames.float() / 255.0))  # bytes are scaled to [0, 1] inside


def test_make_torso_picks_cnn_or_mlp():
    image = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    vector = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert isinstance(make_torso(image, (64,)), NatureCNN)
    mlp = make_torso(vector, (32, 16))
    assert mlp.out_dim == 16 and mlp(torch.zeros(5, 4)).shape == (5, 16)


def test_make_torso_refuses_discrete_observations():
    with pytest.raises(ValueError, match=r"Discrete\(5\).*not supported.*Box.*one-hot"):
        make_torso(gym.spaces.Discrete(5), (64,))


_ALLOCATION_ROUNDS = """
import resource, sys, torch
from rlcore.allocator import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else None
counts = []
for _ in range(6):  # a step's pattern: twenty 1 MB tensors alive at once, then all freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tensors = [torch.ones(1 << 18) for _ in range(20)]
    del tensors
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, counts[-3:])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_memory_is_reused_without_page_faults():
    """Each process starts with glibc's defaults, which here hand the freed 20 MB back to the kernel
    every round (thousands of page faults a round); after reuse_freed_memory() the rounds reuse it."""
    def run(mode: str) -> tuple[str, list[int]]:
        root = Path(__file__).resolve().parents[1]  # a bare environment: no malloc settings, one thread
        out = subprocess.run([sys.executable, "-c", _ALLOCATION_ROUNDS, mode], capture_output=True, text=True,
                             check=True, cwd=root, env={"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1",
                                                        "PYTHONPATH": str(root)})
        applied, counts = out.stdout.split(" ", 1)
        return applied, json.loads(counts)

    applied, reused = run("reuse")
    if applied != "True":
        pytest.skip("not glibc: reuse_freed_memory() leaves malloc as it is")
    assert max(reused) < 100
    _, default = run("default")  # 20 MB of fresh pages is 5120 of them
    if min(default) < 1000:
        pytest.skip(f"this glibc kept the memory by itself ({default} page faults a round): nothing to compare")
