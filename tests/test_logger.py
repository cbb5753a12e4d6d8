"""rlcore.logger: TensorBoard events, config.json, run names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from rlcore.logger import Logger, run_name


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
