"""agents/tune.py: `rl tune` on Optuna, `rl train --hyperparams`, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.cli import main

optuna = pytest.importorskip("optuna")

QUICK = ["--budget", "2048", "--eval-every", "1024", "--eval-episodes", "3", "--sampler", "random"]


def _study(out: Path, name: str):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{(out / name / 'study.db').resolve()}")


def test_a_study_writes_its_results_resumes_and_its_best_trains(tmp_path: Path, capsys):
    out = tmp_path / "tune"
    assert main(["tune", "ppo", "CartPole-v1", "--trials", "2", *QUICK, "--pruner", "none", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    root = out / "ppo_CartPole-v1"
    assert "Best of 2 trials" in printed and "--hyperparams" in printed
    for name in ("best_hyperparameters.json", "trials.md", "trials.csv", "history.png", "study.db"):
        assert (root / name).is_file(), name
    best = json.loads((root / "best_hyperparameters.json").read_text())
    study = _study(out, "ppo_CartPole-v1")
    assert best["value"] == max(t.value for t in study.trials) and set(best["hyperparameters"]) == set(study.best_params)
    assert all(t.intermediate_values for t in study.trials)  # every evaluation was reported to the pruner
    assert len((root / "trials.md").read_text().splitlines()) == 4 + 2
    hparams = EventAccumulator(str(next((root / "hparams").glob("trial*"))))
    hparams.Reload()
    assert "hparam/return" in hparams.Tags()["scalars"]

    # The same study name resumes: one more trial makes three.
    assert main(["tune", "ppo", "CartPole-v1", "--trials", "1", *QUICK, "--pruner", "none", "--out", str(out)]) == 0
    assert len(_study(out, "ppo_CartPole-v1").trials) == 3

    run = tmp_path / "run"
    assert main(["train", "ppo", "CartPole-v1", "--hyperparams", str(root / "best_hyperparameters.json"), "--total-steps",
                 "256", "--gamma", "0.9", "--run-dir", str(run), "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    for name, value in best["hyperparameters"].items():
        assert config[name] == (0.9 if name == "gamma" else value), name  # the flag wins over the file


def test_workers_share_the_study(tmp_path: Path, capsys):
    assert main(["tune", "a2c", "CartPole-v1", "--trials", "2", "--n-jobs", "2", *QUICK, "--out", str(tmp_path)]) == 0
    assert len(_study(tmp_path, "a2c_CartPole-v1").trials) == 2


def test_bad_search_spaces_and_storages_are_one_line_errors(tmp_path: Path, capsys):
    cases = [({"learning_rat": {"low": 1e-4, "high": 1e-3}},
              "Unknown hyperparameter 'learning_rat' (did you mean 'learning_rate'?) for --search-space"),
             ({"learning_rate": {"low": 1e-4, "high": float("inf")}}, "low 0.0001 and high inf must be finite numbers"),
             ({"learning_rate": {"low": 1e-2, "high": 1e-4}}, "low 0.01 is above high 0.0001"),
             ({"ent_coef": {"low": 0, "high": 0.1, "log": True}}, "a log range must lie above zero"),
             ({"gamma": {"choices": []}}, "or {\"choices\": [...]} with at least one value")]
    for i, (space, words) in enumerate(cases):
        file = tmp_path / f"space{i}.json"
        file.write_text(json.dumps(space))
        assert main(["tune", "ppo", "CartPole-v1", "--search-space", str(file), "--out", str(tmp_path / "t")]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text("learning_rate: {low: 1e-4, high: [\n")
    assert main(["tune", "ppo", "CartPole-v1", "--search-space", str(yaml_file)]) == 2
    assert "cannot be read" in capsys.readouterr().err
    started = time.perf_counter()
    assert main(["tune", "ppo", "CartPole-v1", "--storage", "nosuchdb://nowhere/study", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "--storage nosuchdb://nowhere/study: cannot open the study there" in err and err.count("\n") == 1
    assert time.perf_counter() - started < 30
    assert main(["tune", "ppo", "CartPole-v1", "--budget", "1000", "--eval-every", "5000"]) == 2
    assert "above --budget" in capsys.readouterr().err
    bad = tmp_path / "best.json"
    bad.write_text(json.dumps({"hyperparameters": {"learning_rat": 1e-3}}))
    assert main(["train", "ppo", "CartPole-v1", "--hyperparams", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Unknown hyperparameter 'learning_rat' (did you mean 'learning_rate'?)" in err and err.count("\n") == 1
