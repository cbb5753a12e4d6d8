"""Batched environments: ``make(env_id, num_envs, device=...)`` gives a torch VecEnv.

Two backends sit under one contract: torch-native re-writes of the classic-control tasks
(``envs.classic``: every copy steps as one tensor operation on any device) and gymnasium's
own environments adapted at the edge (``GymVecEnv``). ``backend="auto"`` picks the
torch-native one where it exists.

The wrapper chain ``make`` builds, innermost first::

    TorchVecEnv or GymVecEnv -> EpisodeStatistics -> [ObservationNormalization if normalize_obs]

EpisodeStatistics sits directly on the adapter so it sees the raw reward and the raw
episode ends; a trainer finds it with ``env.find(EpisodeStatistics)``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
from functools import partial
from typing import Any

import gymnasium as gym
import torch
from gymnasium.envs.registration import EnvSpec

from envs.atari import is_atari, make_atari, register_ale
from envs.classic import TORCH_ENVS, TorchVecEnv
from envs.core import VecEnv, VecEnvWrapper
from envs.gym_adapter import GymVecEnv
from envs.interop import GymnasiumVectorEnv, register_with_gymnasium, to_sb3
from envs.wrappers import ClipReward, EpisodeStatistics, ObservationNormalization, RewardNormalization

__all__ = [
    "ClipReward",
    "EpisodeStatistics",
    "GymVecEnv",
    "GymnasiumVectorEnv",
    "ObservationNormalization",
    "RewardNormalization",
    "TEXT_ENV_ID",
    "TORCH_ENVS",
    "TorchVecEnv",
    "VecEnv",
    "VecEnvWrapper",
    "list_envs",
    "make",
    "to_sb3",
]

register_with_gymnasium()  # gym.make_vec("rlcore/CartPole-v1", num_envs=N, vectorization_mode="vector_entry_point")

BACKENDS = ("auto", "torch", "gymnasium")
# Text generation as an environment (envs.text): prompts in, one token per action, reward at the end.
TEXT_ENV_ID = "Text-v0"

# Entry-point module prefix -> the pyproject extra that installs its dependency.
_EXTRAS = {"gymnasium.envs.box2d": "box2d", "gymnasium.envs.mujoco": "mujoco", "ale_py": "atari"}


def _register_ale_if_installed() -> None:
    with contextlib.suppress(gym.error.DependencyNotInstalled):
        register_ale()


def _find_spec(env_id: str) -> EnvSpec:
    """The registered spec of ``env_id``, with errors that say what to type or install."""
    if ":" in env_id:  # gymnasium's "package.module:EnvId-v0": importing the module registers the id
        module, env_id = env_id.split(":", 1)
        importlib.import_module(module)
    if env_id not in gym.registry:
        if env_id.startswith("ALE/"):
            register_ale()
        else:
            _register_ale_if_installed()  # legacy Atari ids, and close matches among them
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown environment id {env_id!r}.{hint} (see `rl list`)")
    spec = gym.spec(env_id)
    if isinstance(spec.entry_point, str):
        module = spec.entry_point.split(":")[0]
        extra = next((name for prefix, name in _EXTRAS.items() if module.startswith(prefix)), None)
        try:
            # Importing the entry point's module is what fails when an optional dependency
            # is missing; doing it here gives the project's install hint instead of gymnasium's.
            importlib.import_module(module)
        except (ImportError, gym.error.DependencyNotInstalled) as err:
            if extra is None:
                raise
            raise gym.error.DependencyNotInstalled(
                f"{env_id} needs an optional dependency that is not installed ({err}). "
                f'Install it with: pip install -e ".[{extra}]"'
            ) from err
    return spec


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} is not a valid torch device") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use device='cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:index]', got {str(device)!r}")
    return device


def _make_one(spec: EnvSpec, atari: bool, env_kwargs: dict[str, Any]) -> gym.Env:
    # Module-level (not a lambda) so AsyncVectorEnv can pickle it under spawn/forkserver;
    # building from the spec needs no registry lookup in the worker process.
    return make_atari(spec, **env_kwargs) if atari else gym.make(spec, **env_kwargs)


def _torch_kwargs(env_id: str) -> set[str]:
    """The environment options the torch-native version of ``env_id`` accepts (rendering is not one)."""
    params = inspect.signature(TORCH_ENVS[env_id]).parameters
    return {name for name in params if name not in ("num_envs", "device", "seed", "dtype", "render_mode")}


def make(
    env_id: str,
    num_envs: int = 1,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    vectorization: str = "sync",
    normalize_obs: bool = False,
    atari_wrappers: bool = True,
    backend: str = "auto",
    **env_kwargs: Any,
) -> VecEnv:
    """``num_envs`` copies of a gymnasium environment as one VecEnv with tensors on ``device``.

    Args:
        env_id: a gymnasium id (``rl list`` shows them), e.g. ``"CartPole-v1"``, ``"ALE/Pong-v5"``.
        num_envs: number of copies stepped together.
        seed: the first ``reset`` seeds copy ``i`` with ``seed + i``; also seeds the action spaces.
        device: where every returned tensor lives (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        vectorization: ``"sync"`` steps the copies in this process (best for fast envs);
            ``"async"`` steps each in its own process (for slow envs).
        normalize_obs: wrap in ObservationNormalization (running mean/var, clip to [-10, 10]).
        atari_wrappers: apply the Atari preprocessing of ``envs.atari`` to ale-py ids.
        backend: ``"torch"`` for the torch-native version (``TORCH_ENVS`` lists the ids that have
            one), ``"gymnasium"`` for gymnasium's, ``"auto"`` for torch-native where it exists
            (and gymnasium when ``vectorization="async"`` or an ``env_kwargs`` option such as
            ``render_mode`` needs gymnasium's).
        **env_kwargs: passed to ``gym.make`` for each copy (e.g. ``max_episode_steps=500``).
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if env_id == TEXT_ENV_ID:  # a language-model task: its options are TextGenerationEnv's (prompts, tokenizer, reward)
        from envs.text import TextGenerationEnv

        return EpisodeStatistics(TextGenerationEnv(num_envs=num_envs, seed=seed, device=_resolve_device(device),
                                                   **env_kwargs))
    if vectorization not in ("sync", "async"):
        raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    device = _resolve_device(device)
    if backend == "torch" and vectorization != "sync":
        raise ValueError("vectorization applies to gymnasium environments; backend='torch' steps every copy as one "
                         "tensor operation. Drop vectorization, or use backend='gymnasium'.")
    if backend == "torch" and env_id not in TORCH_ENVS:
        raise ValueError(f"backend='torch': {env_id!r} has no torch-native version (those that do: "
                         f"{', '.join(sorted(TORCH_ENVS))}). Use backend='gymnasium' or 'auto'.")
    unsupported = sorted(set(env_kwargs) - _torch_kwargs(env_id)) if env_id in TORCH_ENVS else []
    if backend == "torch" and unsupported:
        raise ValueError(f"backend='torch': the torch-native {env_id} does not take {', '.join(unsupported)} "
                         f"(it takes {', '.join(sorted(_torch_kwargs(env_id)))}). Use backend='gymnasium'.")
    wants_gymnasium = vectorization == "async" or bool(unsupported)
    if env_id in TORCH_ENVS and (backend == "torch" or (backend == "auto" and not wants_gymnasium)):
        env: VecEnv = EpisodeStatistics(TORCH_ENVS[env_id](num_envs=num_envs, device=device, seed=seed, **env_kwargs))
        return ObservationNormalization(env) if normalize_obs else env
    spec = _find_spec(env_id)
    env_fn = partial(_make_one, spec, atari_wrappers and is_atari(spec), env_kwargs)
    vector_cls = gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
    # copy=False: GymVecEnv copies every array into a tensor anyway, so gymnasium's copy is waste.
    venv = vector_cls([env_fn] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, copy=False)
    env = EpisodeStatistics(GymVecEnv(venv, device=device, seed=seed, env_id=env_id))
    if normalize_obs:
        env = ObservationNormalization(env)
    return env


def list_envs() -> list[str]:
    """Every environment id ``make`` accepts here (Atari ones when ale-py is installed), sorted."""
    _register_ale_if_installed()
    return sorted([*gym.registry, TEXT_ENV_ID])
