"""Checkpoints and models written by earlier versions load, evaluate to the return they had, and
resume to the parameters the writing version reached (tests/fixtures/make_format1.py made them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from agents import AGENTS
from agents.rlhf import evaluate_text
from rlcore import evaluate
from rlcore.checkpoint import CheckpointError

FORMAT1 = Path(__file__).parent / "fixtures" / "format1"
EXPECTED = json.loads((FORMAT1 / "expected.json").read_text())


def checksum(module: torch.nn.Module) -> float:
    return float(sum(p.detach().double().abs().sum() for p in module.parameters()))


@pytest.fixture
def run_copy(tmp_path: Path, request) -> Path:
    """A copy of the fixture run (loading must not write into tests/)."""
    return Path(shutil.copytree(FORMAT1 / request.param, tmp_path / request.param))


def overrides(name: str) -> dict:
    # The format-1 run recorded its model directory as typed ("tiny-lm", relative to where it ran).
    return {"model": str(FORMAT1 / "tiny-lm")} if EXPECTED[name]["env_id"] == "Text-v0" else {}


def score(agent, name: str) -> float:
    if EXPECTED[name]["env_id"] == "Text-v0":
        return evaluate_text(agent, episodes=8, seed=5)[0]
    return evaluate(agent, EXPECTED[name]["env_id"], episodes=5, seed=5)[0]


@pytest.mark.parametrize("run_copy", sorted(EXPECTED), indirect=True)
def test_format1_models_and_checkpoints_evaluate_to_their_recorded_return(run_copy: Path):
    name = run_copy.name
    cls = AGENTS[EXPECTED[name]["algo"]]
    for kind in ("model.pt", "checkpoint.pt"):
        with pytest.raises(CheckpointError, match="--trust-checkpoint"):  # they hold pickled objects
            cls.load(run_copy / kind, **overrides(name))
        with pytest.warns(RuntimeWarning, match="with pickle"):
            agent = cls.load(run_copy / kind, trust=True, **overrides(name))
        assert score(agent, name) == pytest.approx(EXPECTED[name][kind], rel=1e-6, abs=1e-6), kind


@pytest.mark.parametrize("run_copy", sorted(EXPECTED), indirect=True)
def test_format1_checkpoints_resume_to_the_parameters_the_writing_version_reached(run_copy: Path, tmp_path: Path):
    name = run_copy.name
    agent = AGENTS[EXPECTED[name]["algo"]].load(run_copy / "checkpoint.pt", trust=True, **overrides(name))
    assert agent.global_step == EXPECTED[name]["steps"]
    agent.learn(EXPECTED[name]["resumed_steps"], run_dir=tmp_path / "resumed", progress=False)
    network = agent.policy if hasattr(agent, "policy") else agent.q
    # Recorded on a 2-core AVX2 EPYC; other CPUs' kernels sum in another order: the GPT-2 run's checksum
    # moves by about 2e-9 relative on an AVX-512 EPYC. A resume that went wrong moves it by far more.
    assert checksum(network) == pytest.approx(EXPECTED[name]["resumed_checksum"], rel=1e-7)
