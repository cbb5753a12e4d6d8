"""agents/returns.py: `rl bench --returns`, the fresh-seed return benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.cli import main
from agents.presets import PRESETS
from agents.returns import GOALS, check_request, fresh_seeds, summarize


def test_every_preset_of_a_classic_or_box2d_or_mujoco_env_has_a_goal():
    for algo, presets in PRESETS.items():
        for env_id in presets:
            if not env_id.startswith("ALE/") and env_id != "Text-v0":
                assert (algo, env_id) in GOALS, (algo, env_id)


def test_fresh_seeds_are_distinct_and_away_from_the_tuning_seeds():
    seeds = fresh_seeds(50)
    assert len(set(seeds)) == 50 and min(seeds) >= 1_000
    assert fresh_seeds(50) != seeds  # drawn anew each time


def test_summary_counts_the_seeds_at_the_target_and_takes_the_iqm_with_an_interval():
    s = summarize([float(x) for x in range(10)], target=7)
    assert s["at_target"] == 3 and s["seeds"] == 10
    assert s["iqm"] == pytest.approx(4.5)  # the mean of the middle half: 2.5 .. 6.5 trimmed
    low, high = s["iqm_ci95"]
    assert low < s["iqm"] < high and 0 <= low and high <= 9


def test_a_request_without_a_preset_or_seeds_is_one_line_naming_the_fix(capsys):
    with pytest.raises(ValueError, match="the presets with one are dqn CartPole-v1, .*reinforce CartPole-v1, .*td3 Hopper-v5"):
        check_request("ddpg", None, 10)
    assert check_request("ppo", "Pendulum-v1", 10) == [("ppo", "Pendulum-v1")]
    for argv, words in [(["--seeds", "0"], "give a number of fresh seeds >= 1"),
                        (["--algo", "dqn", "--env", "Pendulum-v1"], "No returns benchmark for dqn on Pendulum-v1"),
                        (["--seeds", "x-1"], "--seeds: 'x-1' is not a seed list")]:
        assert main(["bench", "--returns", *argv]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert main(["bench", "--algo", "dqn"]) == 2
    assert "--algo and --env choose presets for --returns" in capsys.readouterr().err


def test_a_preset_whose_environment_is_not_installed_is_refused_before_anything_trains(monkeypatch, capsys):
    from agents import returns

    monkeypatch.setitem(returns.EXTRA_MODULES, "box2d", "no_such_module_installed")
    fix = r'pip install -e "\.\[box2d\]"'
    with pytest.raises(ValueError, match="dqn LunarLander-v3, ppo LunarLander-v3 need the box2d extra: " + fix):
        check_request(None, "LunarLander-v3", 10)
    assert main(["bench", "--returns", "--algo", "ppo", "--env", "LunarLander-v3"]) == 2
    err = capsys.readouterr().err
    assert "ppo LunarLander-v3 needs the box2d extra" in err and err.count("\n") == 1, err


def test_the_benchmark_writes_per_seed_scores_statistics_and_a_plot(tmp_path: Path, capsys):
    pytest.importorskip("stable_baselines3")
    assert main(["bench", "--returns", "--algo", "a2c", "--env", "CartPole-v1", "--seeds", "2", "--quick",
                 "--episodes", "3", "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    results = json.loads((run / "results.json").read_text())
    (entry,) = results["presets"]
    assert len(results["seeds"]) == 2 and [r["seed"] for r in entry["ours"]] == results["seeds"]
    assert [r["seed"] for r in entry["sb3"]] == results["seeds"] and entry["sb3_recipe"]["algo"] == "A2C"
    for library in ("ours", "sb3"):
        for model in ("final", "best"):
            stats = entry[f"{library}_stats"][model]
            assert stats["scores"] == [r[model] for r in entry[library]] and stats["seeds"] == 2
    assert all(r["curve"] and r["steps"] >= 2_048 for r in entry["ours"])
    assert (run / "returns.png").stat().st_size > 0
    table = (run / "results.md").read_text()
    assert "| a2c | CartPole-v1 | 500 | ours | 2,048 | best |" in table and "SB3 (zoo)" in table
    assert str(results["seeds"][0]) in capsys.readouterr().out
