"""The `rl` command end to end: train, eval, resume, list, and the errors a user meets.

Commands run in-process through `agents.cli.main` (fast); one runs through the installed
console script to prove the entry point works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import DQN
from agents.cli import main
from agents.presets import preset_for
from rlcore.checkpoint import CHECKPOINT_NAME, MODEL_NAME, load_checkpoint
from rlcore.evaluation import evaluate

TRAIN = ["train", "dqn", "CartPole-v1", "--total-steps", "600", "--seed", "1", "--no-progress",
         "--learning-starts", "100", "--buffer-size", "1000", "--hidden-sizes", "32,32", "--double", "true"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One short CartPole run shared by the tests that only read it."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    assert main([*TRAIN, "--run-dir", str(run_dir)]) == 0
    return run_dir


def _error(capsys, argv: list[str]) -> str:
    """Run `rl argv`, expect exit code 2 and return what it printed to stderr."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: "), captured.err
    return captured.err


def test_train_writes_model_checkpoint_summary_and_events(trained: Path):
    for name in (MODEL_NAME, CHECKPOINT_NAME, "summary.json", "config.json"):
        assert (trained / name).is_file(), name
    assert list(trained.glob("events.out.tfevents.*"))
    assert json.loads((trained / "summary.json").read_text())["steps"] == 600
    config = json.loads((trained / "config.json").read_text())
    # Flags reach the config; the CartPole preset fills in what was not given.
    assert config["hidden_sizes"] == [32, 32] and config["double"] is True and config["seed"] == 1
    assert config["buffer_size"] == 1000 and config["train_freq"] == preset_for("dqn", "CartPole-v1")["train_freq"]
    model = load_checkpoint(trained / MODEL_NAME)
    assert model["counters"]["global_step"] == 600 and "buffer" not in model
    assert "buffer" in load_checkpoint(trained / CHECKPOINT_NAME)


def test_eval_prints_one_json_object(trained: Path, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained), "--episodes", "3", "--seed", "0", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["episodes"] == 3 and result["env_id"] == "CartPole-v1" and result["algo"] == "dqn"
    assert result["mean_return"] >= 1 and result["std_return"] >= 0
    assert result["checkpoint"].endswith(MODEL_NAME)


def test_eval_on_the_other_backend(trained: Path, capsys):
    """The fixture trained on the torch-native CartPole (backend auto); score it on gymnasium's."""
    capsys.readouterr()
    assert main(["eval", str(trained), "--episodes", "2", "--backend", "gymnasium", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    assert main(["eval", str(trained), "--backend", "jax"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'jax'" in err and err.count("\n") == 1


def test_resume_continues_to_the_new_budget(trained: Path, tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    assert main(["train", "dqn", "CartPole-v1", "--resume", str(run_dir), "--total-steps", "1000", "--no-progress"]) == 0
    assert "at step 600 of 1,000" in capsys.readouterr().out
    assert load_checkpoint(run_dir / MODEL_NAME)["counters"]["global_step"] == 1000
    assert load_checkpoint(run_dir / CHECKPOINT_NAME)["counters"]["global_step"] == 1000
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 1000


def test_a_run_that_evaluates_keeps_its_best_model_for_eval_and_load(trained: Path, tmp_path: Path, capsys):
    err = _error(capsys, ["eval", str(trained), "--best"])  # the fixture never evaluated
    assert f"Run '{trained}' has no best_model.pt" in err and "--eval-every" in err and err.count("\n") == 1
    run_dir = tmp_path / "run"
    assert main([*TRAIN, "--run-dir", str(run_dir), "--eval-every", "200", "--eval-episodes", "5"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_step"] in (200, 400, 600) and f"at step {summary['best_step']:,} (best_model.pt)" in \
        capsys.readouterr().out
    best = DQN.load(run_dir, best=True)
    assert best.global_step == summary["best_step"] and DQN.load(run_dir).global_step == 600
    # The policy that scored best: the same evaluation gives the same mean.
    assert evaluate(best, "CartPole-v1", episodes=5, seed=10_000, num_envs=5)[0] == summary["best_mean_return"]
    assert main(["eval", str(run_dir), "--best", "--json", "--episodes", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(run_dir / "best_model.pt")


def test_resume_with_another_env_is_refused(trained: Path, capsys):
    before = (trained / CHECKPOINT_NAME).read_bytes()
    err = _error(capsys, ["train", "dqn", "Acrobot-v1", "--resume", str(trained), "--total-steps", "1000", "--no-progress"])
    assert "CartPole-v1" in err and "Acrobot-v1" in err
    assert (trained / CHECKPOINT_NAME).read_bytes() == before


def test_unknown_hyperparameter_lists_valid_names(tmp_path: Path, capsys):
    err = _error(capsys, [*TRAIN, "--run-dir", str(tmp_path / "r"), "--learning-rat", "1"])
    assert "--learning-rat" in err and "Valid names" in err
    assert "--learning-rate" in err and "--target-update-interval" in err
    assert not (tmp_path / "r").exists()  # nothing was started


@pytest.mark.parametrize("flag, value, words", [
    ("--gamma", "2", ["gamma", "2", "(0, 1]"]),
    ("--batch-size", "abc", ["--batch-size", "abc", "int"]),
    ("--double", "maybe", ["--double", "true or false"]),
], ids=["bad-value", "bad-int", "bad-bool"])
def test_bad_hyperparameter_value(tmp_path: Path, capsys, flag, value, words):
    err = _error(capsys, [*TRAIN, "--run-dir", str(tmp_path / "r"), flag, value])
    assert all(w in err for w in words), err


def test_unknown_env_id_suggests_close_match(tmp_path: Path, capsys):
    err = _error(capsys, ["train", "dqn", "CartPol-v1", "--total-steps", "10", "--run-dir", str(tmp_path / "r")])
    assert "CartPol-v1" in err and "Did you mean" in err and "CartPole-v1" in err


def test_continuous_env_is_refused(tmp_path: Path, capsys):
    err = _error(capsys, ["train", "dqn", "Pendulum-v1", "--total-steps", "10", "--run-dir", str(tmp_path / "r")])
    assert "Discrete" in err and "Box" in err


def test_missing_optional_dependency_is_a_clean_error(tmp_path: Path, capsys, monkeypatch):
    # As if Box2D were not installed: the user gets the install hint, not a traceback.
    monkeypatch.setitem(sys.modules, "Box2D", None)
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)
    err = _error(capsys, ["train", "dqn", "LunarLander-v3", "--total-steps", "10", "--run-dir", str(tmp_path / "r")])
    assert 'pip install -e ".[box2d]"' in err


def test_eval_missing_path(tmp_path: Path, capsys):
    err = _error(capsys, ["eval", str(tmp_path / "nope")])
    assert "does not exist" in err and "nope" in err
    err = _error(capsys, ["eval", str(tmp_path)])  # a directory without checkpoints
    assert "No checkpoint" in err


def test_eval_corrupt_checkpoint_leaves_it_untouched(trained: Path, tmp_path: Path, capsys):
    good = (trained / MODEL_NAME).read_bytes()
    path = tmp_path / MODEL_NAME
    path.write_bytes(good[: len(good) // 2])  # a copy cut short, as by a crash mid-transfer
    err = _error(capsys, ["eval", str(path), "--episodes", "1"])
    assert "corrupt" in err and str(path) in err
    assert path.read_bytes() == good[: len(good) // 2]


def test_list_shows_agents_hyperparameters_and_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{algo}  (" in "\n" + out for algo in ("a2c", "dqn", "ppo", "reinforce"))
    dqn = out[out.index("dqn  ("):out.index("ppo  (")]
    for flag in ("--learning-rate", "--buffer-size", "--double", "--hidden-sizes"):
        assert flag in dqn
    assert "Global gradient-norm clip." in dqn  # field docstrings are the help text
    presets = next(line for line in dqn.splitlines() if line.strip().startswith("presets:"))
    assert "CartPole-v1" in presets and "ALE/Pong-v5" in presets
    assert "\n  CartPole-v1\n" in out  # the environment listing
    ppo = out[out.index("ppo  ("):out.index("reinforce  (")]
    groups = [line.strip() for line in ppo.splitlines() if line.startswith("  ") and not line.startswith("    ")]
    assert [g.split(":")[0] for g in groups] == ["PPO", "KL", "Text-v0 environment", "LM policy", "presets"]
    sections = re.split(r"\n  (?! )", ppo)  # one per group: its title line, then its flags
    for group, flags in (("KL", ("--kl-coef", "--kl-target")), ("Text-v0 environment", ("--prompts", "--group-size")),
                         ("LM policy", ("--model", "--temperature", "--lora-r"))):
        section = next(s for s in sections if s.startswith(group))
        assert all(f"\n    {flag} " in section for flag in flags), group


def test_console_script_entry_point():
    script = shutil.which("rl", path=os.path.dirname(sys.executable)) or shutil.which("rl")
    if script is None:
        pytest.skip("the `rl` console script is not installed (pip install -e .)")
    done = subprocess.run([script, "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--learning-rate" in done.stdout and "CartPole-v1" in done.stdout
    bad = subprocess.run([script, "eval", "/nonexistent/run"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


# ----- Atari -------------------------------------------------------------------------------
@pytest.fixture
def atari():
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")


def test_atari_with_preset(atari, tmp_path: Path):
    # The preset's 100k-frame buffer (optimize_memory_usage) is allocated; no update runs
    # before its learning_starts of 100k.
    assert main(["train", "dqn", "ALE/Pong-v5", "--total-steps", "2000", "--run-dir", str(tmp_path), "--no-progress"]) == 0
    model = load_checkpoint(tmp_path / MODEL_NAME)
    assert model["counters"]["global_step"] == 2000 and model["config"]["optimize_memory_usage"] is True
    assert model["config"]["clip_reward"] is True


def test_atari_cnn_updates(atari, tmp_path: Path):
    argv = ["train", "dqn", "ALE/Pong-v5", "--total-steps", "1000", "--run-dir", str(tmp_path), "--no-progress",
            "--learning-starts", "500", "--buffer-size", "5000"]
    assert main(argv) == 0
    model = load_checkpoint(tmp_path / MODEL_NAME)
    assert model["counters"]["num_updates"] == 126  # every 4th step from step 500 to 1000, both included
    assert "torso.convs.0.weight" in model["state"]["q"]  # the Nature CNN, not an MLP, was trained


def test_ppo_breakout_end_to_end(atari, tmp_path: Path):
    """The policy-gradient path on images: Nature CNN shared by actor and critic, Atari wrappers."""
    assert main(["train", "ppo", "ALE/Breakout-v5", "--total-steps", "2000", "--run-dir", str(tmp_path),
                 "--no-progress"]) == 0
    model = load_checkpoint(tmp_path / MODEL_NAME)
    assert model["counters"]["global_step"] >= 2000 and model["counters"]["num_updates"] == 2
    assert "actor_torso.convs.0.weight" in model["state"]["policy"]


@pytest.mark.parametrize("algo", ["ppo", "a2c", "reinforce"])
def test_policy_gradient_agents_train_and_evaluate_from_the_cli(algo, tmp_path: Path, capsys):
    assert main(["train", algo, "Pendulum-v1", "--total-steps", "512", "--run-dir", str(tmp_path), "--no-progress",
                 "--num-envs", "2", "--n-steps", "64"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path), "--episodes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["algo"] == algo and result["episodes"] == 2 and result["mean_return"] < 0


def test_bench_writes_markdown_json_and_plot(tmp_path: Path, capsys):
    """--quick runs every part with tiny budgets: it checks the pipeline, not the speed."""
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    report = (run / "results.md").read_text()
    assert "Machine:" in report and "cores" in report and "torch" in report
    for heading in ("Environment throughput", "PPO on CartPole-v1", "Many seeds at once"):
        assert heading in report
    results = json.loads((run / "results.json").read_text())
    assert results["env"]["ratio"] > 1 and len(results["ppo"]["sb3"]) == 1 and results["seeds"]["many"] == 2
    assert (run / "plot.png").stat().st_size > 1000
    assert "results.md" in capsys.readouterr().out
    assert "sps" not in results  # the training-throughput part joins by default only on CUDA
    assert main(["bench", "--only", "env,gpu", "--out", str(tmp_path / "x")]) == 2
    assert "Unknown bench part(s) gpu" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_bench_training_throughput_part_times_eager_and_compiled_ppo(tmp_path: Path, capsys):
    import shutil

    if not (shutil.which("c++") or shutil.which("g++")):
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    assert main(["bench", "--quick", "--only", "sps", "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    rows = json.loads((run / "results.json").read_text())["sps"]["rows"]
    assert [(r["copies"], r["variant"]) for r in rows] == [(64, "eager"), (64, "compiled acting step")]
    assert all(r["steps_per_s"] > 0 and 0 < r["update_seconds_share"] < 1 for r in rows)
    assert "PPO training throughput" in (run / "results.md").read_text()


def test_sigterm_saves_a_checkpoint_says_how_to_resume_and_exits_143(tmp_path: Path):
    """What timeout, docker stop, Slurm and Kubernetes send: the run stops at a step boundary as on Ctrl-C.
    While it runs, a second process given its directory is refused in one line."""
    run_dir = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "train", "ppo", "CartPole-v1", "--total-steps", "1e8",
                             "--run-dir", str(run_dir), "--no-progress"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "config.json").exists():  # written when the run starts
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "agents.cli", "train", "ppo", "CartPole-v1", "--total-steps",
                                 "2048", "--run-dir", str(run_dir), "--no-progress"], cwd=root, capture_output=True,
                                text=True, timeout=120)  # a second process into the live run's directory
        assert second.returncode == 2 and second.stderr.count("\n") == 1 and str(run_dir) in second.stderr, second.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "SIGTERM: stopping after this step" in out and f"--resume {run_dir}" in out
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "summary.json").exists()


HOSTILE = ["inf", "nan", "1e999", "-1", "0", "", "abc", str(10**30)]


@pytest.mark.parametrize("algo", ["a2c", "dqn", "ppo", "reinforce"])
def test_hostile_values_for_every_hyperparameter_end_in_one_line_never_a_traceback(algo, tmp_path: Path, monkeypatch,
                                                                                   capsys):
    """Each value either builds an agent (training itself is skipped here: building it is where the
    values are checked) or exits 2 with one line on stderr."""
    from agents import AGENTS
    from rlcore.config import flat_fields

    cls = AGENTS[algo]

    def no_training(self, total_steps, run_dir=None, **kwargs):
        self.run_dirs, self.summary = [tmp_path], {"final_mean_return": None}
        return self

    monkeypatch.setattr(cls, "learn", no_training)
    refused = 0
    for name in flat_fields(cls.config_class):
        if name.startswith("kl_"):  # Text-v0's settings: refused outside it whatever the value
            continue
        for value in HOSTILE:
            code = main(["train", algo, "CartPole-v1", f"--{name.replace('_', '-')}", value, "--total-steps", "1",
                         "--no-progress"])
            out, err = capsys.readouterr()
            assert code in (0, 2), (name, value, code)
            if code == 2:
                refused += 1
                assert err.count("\n") == 1 and err.startswith(("error:", "rl train: error:")), (name, value, err)
                assert "Traceback" not in err
            else:
                assert "Done" in out, (name, value, out)
    assert refused > 0
    for flag, value in (("--total-steps", "inf"), ("--total-steps", "0"), ("--total-steps", "1e99"),
                        ("--stop-at-return", "nan"), ("--eval-every", "-1"), ("--num-envs", "1e999")):
        assert main(["train", algo, "CartPole-v1", flag, value, "--no-progress"]) == 2, (flag, value)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err, err
