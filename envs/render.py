"""RGB frames of one environment copy, and evaluation episodes written as mp4 files.

gymnasium's environments render themselves (`render_mode="rgb_array"`). A torch-native copy has no
renderer of its own: its state is handed to gymnasium's implementation of the same task, whose
`render` draws it, so the video looks like gymnasium's. Videos are written with imageio (its ffmpeg
plugin), the `video` extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from envs.classic import TORCH_ENVS, TorchVecEnv
from envs.core import VecEnv
from envs.gym_adapter import GymVecEnv

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen: no display, no sound device
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

_RENDERERS: dict[str, gym.Env] = {}


def _gymnasium_renderer(env_id: str) -> gym.Env:
    if env_id not in _RENDERERS:
        env = gym.make(env_id, render_mode="rgb_array")
        env.reset(seed=0)
        _RENDERERS[env_id] = env
    return _RENDERERS[env_id]


def frame(env: VecEnv, copy: int = 0) -> np.ndarray:
    """``[H, W, 3]`` uint8: what copy `copy` of `env` shows now."""
    inner = env.unwrapped
    if isinstance(inner, TorchVecEnv):
        renderer = _gymnasium_renderer(inner.env_id)
        renderer.unwrapped.state = inner.get_state()[copy].double().cpu().numpy()
        if hasattr(renderer.unwrapped, "last_u"):
            renderer.unwrapped.last_u = None  # Pendulum's torque arrow: not part of the state
        return renderer.render()
    if isinstance(inner, GymVecEnv) and hasattr(inner.venv, "envs"):
        return inner.venv.envs[copy].render()
    raise ValueError(f"{env.env_id}: frames come from a torch-native environment or gymnasium's in-process vector "
                     "environment (vectorization='sync').")


def can_render(env_id: str) -> bool:
    """Whether frames can be had: torch-native, or a gymnasium class whose metadata lists rgb_array."""
    if env_id in TORCH_ENVS:
        return True
    spec = gym.spec(env_id)
    entry = spec.entry_point
    creator = entry if callable(entry) else gym.envs.registration.load_env_creator(entry)
    return "rgb_array" in getattr(creator, "metadata", {}).get("render_modes", [])


def record_episodes(make_env: Callable[..., VecEnv], policy: Callable[[torch.Tensor], torch.Tensor], env_id: str,
                    out_dir: str | Path, episodes: int = 1, seed: int | None = None, prefix: str = "episode",
                    fps: int = 30) -> list[Path]:
    """Play `episodes` episodes with `policy` on one copy from `make_env(render_mode=...)` and write each to
    `out_dir/<prefix>-<k>.mp4`; returns the paths. Each frame shows a state the policy acted on."""
    import imageio.v2 as imageio

    if not can_render(env_id):
        raise ValueError(f"{env_id} cannot render rgb_array frames, so no video can be made of it: choose an "
                         "environment whose render modes include rgb_array, or leave out --video / --capture-video.")
    env = make_env()
    if not isinstance(env.unwrapped, TorchVecEnv):  # gymnasium's environment draws itself when asked at creation
        env.close()
        env = make_env(render_mode="rgb_array")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    obs, _ = env.reset(seed=seed)
    for k in range(episodes):
        path = out / f"{prefix}-{k}.mp4"
        with imageio.get_writer(path, fps=fps, macro_block_size=1) as writer:
            while True:
                writer.append_data(frame(env))
                with torch.no_grad():
                    obs, _, terminated, truncated, _ = env.step(policy(obs))
                if bool((terminated | truncated)[0]):
                    break
        paths.append(path)
    env.close()
    return paths
