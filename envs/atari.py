"""Atari games (ale-py) with the standard DQN preprocessing.

``envs.make`` builds every copy of an ale-py environment (``ALE/...`` ids and the legacy
``...NoFrameskip-v4``-style ids alike) as::

    gym.make(env_id, frameskip=1, **kwargs)
    -> AtariPreprocessing(noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True, scale_obs=False)
    -> FrameStackObservation(stack_size=4)

so an observation is uint8 ``[4, 84, 84]`` (scaling to [0, 1] is left to the network, which
keeps replay buffers 4x smaller). Frame skipping moves from the emulator into
AtariPreprocessing because it max-pools the last two frames (flicker; Mnih et al. 2015).
Everything else keeps the id's own defaults: ``ALE/*-v5`` has sticky actions
(repeat_action_probability=0.25, Machado et al. 2018) and full episodes (no end on life
loss). Reward clipping is not applied here: wrap the VecEnv in ``envs.ClipReward``.
``envs.make(..., atari_wrappers=False)`` returns the raw environment instead.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

_INSTALL_HINT = 'install the Atari extra: pip install -e ".[atari]"'


def register_ale() -> None:
    """Import ale-py and register its ids with gymnasium (gymnasium 1.x does not do it itself)."""
    try:
        import ale_py
    except ImportError as err:
        raise gym.error.DependencyNotInstalled(f"Atari environments need ale-py; {_INSTALL_HINT}") from err
    gym.register_envs(ale_py)


def is_atari(spec: EnvSpec) -> bool:
    return isinstance(spec.entry_point, str) and spec.entry_point.startswith("ale_py")


def make_atari(spec: EnvSpec | str, **kwargs: Any) -> gym.Env:
    """One preprocessed Atari environment, as described in the module docstring."""
    if "frameskip" in kwargs:
        raise ValueError("frameskip is set by the Atari preprocessing (4); pass atari_wrappers=False to control it yourself")
    try:
        import cv2  # noqa: F401  (AtariPreprocessing resizes with OpenCV)
    except ImportError as err:
        raise gym.error.DependencyNotInstalled(f"Atari preprocessing needs opencv; {_INSTALL_HINT}") from err
    env = gym.make(spec, frameskip=1, **kwargs)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True, scale_obs=False)
    return FrameStackObservation(env, stack_size=4)
