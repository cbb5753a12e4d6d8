"""envs/render.py: frames of torch-native and gymnasium copies, evaluation videos, and their bad input."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from agents.cli import main
from envs.classic import TORCH_ENVS
from envs.render import frame, record_episodes

imageio = pytest.importorskip("imageio.v2")


def _frames(path: Path) -> list[np.ndarray]:
    return [f for f in imageio.get_reader(path)]  # list() would trust the reader's length, which is inf


@pytest.mark.parametrize("env_id", sorted(TORCH_ENVS))
def test_a_torch_native_copy_is_drawn_by_gymnasiums_renderer_from_its_own_state(env_id: str):
    env = envs.make(env_id, num_envs=3, seed=0)
    env.reset(seed=0)
    first = frame(env, copy=0)
    assert first.ndim == 3 and first.shape[2] == 3 and first.dtype == np.uint8
    action = torch.as_tensor(np.stack([env.single_action_space.sample() for _ in range(3)]))
    for _ in range(15):
        env.step(action)
    assert not np.array_equal(first, frame(env, copy=0))  # the picture follows the state


def test_rl_eval_writes_videos_whose_frames_read_back(tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert main(["train", "ppo", "CartPole-v1", "--total-steps", "2048", "--run-dir", str(run), "--no-progress",
                 "--eval-every", "1024", "--eval-episodes", "2", "--capture-video"]) == 0
    assert sorted(p.name for p in (run / "videos").iterdir()) == ["step_1024-0.mp4", "step_2048-0.mp4"]
    for backend, out in (("torch", tmp_path / "torch"), ("gymnasium", tmp_path / "gym")):
        assert main(["eval", str(run), "--episodes", "2", "--seed", "4", "--backend", backend, "--video", str(out),
                     "--video-episodes", "2"]) == 0
        assert "Videos:" in capsys.readouterr().out
        for path in sorted(out.iterdir()):
            frames = _frames(path)
            assert 8 <= len(frames) <= 500 and frames[0].shape == (400, 600, 3)
            assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.1  # the pole moved


def test_the_video_has_one_frame_per_step_of_the_episode(tmp_path: Path):
    env_steps = []

    def make_env(**kw):
        env = envs.make("MountainCar-v0", num_envs=1, seed=1, **kw)
        original = env.step

        def step(action):
            env_steps.append(1)
            return original(action)

        env.step = step
        return env

    (path,) = record_episodes(make_env, lambda obs: torch.zeros(1, dtype=torch.long), "MountainCar-v0", tmp_path)
    assert len(_frames(path)) == len(env_steps) == 200  # pushing left never reaches the flag: the time limit ends it


def test_an_environment_without_rgb_array_is_refused_with_the_option_named(tmp_path: Path, capsys):
    class NoPictures(gym.Env):
        metadata = {"render_modes": ["human"]}
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            return np.zeros(2, dtype=np.float32), {}

        def step(self, action):
            return np.zeros(2, dtype=np.float32), 0.0, True, False, {}

    gym.register("NoPictures-v0", entry_point=NoPictures)
    with pytest.raises(ValueError, match="NoPictures-v0 cannot render rgb_array frames.*leave out --video"):
        record_episodes(lambda **kw: envs.make("NoPictures-v0", **kw), lambda obs: obs, "NoPictures-v0", tmp_path)
    assert main(["train", "ppo", "NoPictures-v0", "--capture-video", "--eval-every", "64"]) == 2
    err = capsys.readouterr().err
    assert "--capture-video: NoPictures-v0 cannot render rgb_array frames" in err and err.count("\n") == 1
    assert main(["train", "ppo", "CartPole-v1", "--capture-video"]) == 2
    assert "give --eval-every" in capsys.readouterr().err
