"""Adapter from a gymnasium vector environment (numpy, host) to the torch VecEnv contract.

This is the one place where numpy becomes torch. Observations keep their dtype (uint8
frames stay uint8, so a replay buffer of Atari frames stays 4x smaller) except float64,
which becomes float32 like every tensor the networks see; reward is float32,
terminated/truncated are bool. Other keys of gymnasium's ``info`` pass through as numpy.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from envs.core import VecEnv

# Spaces whose batched values are one ndarray, so a batch of observations is one tensor.
_ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


@functools.cache
def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    if dtype == np.float64:
        return torch.float32
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def _action_to_numpy(action: Any, space: gym.Space) -> Any:
    """Convert a (possibly nested) batch of actions to what ``space`` (a batched space) holds."""
    if isinstance(space, spaces.Dict):
        return {key: _action_to_numpy(action[key], sub) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_action_to_numpy(a, sub) for a, sub in zip(action, space.spaces, strict=True))
    if isinstance(action, torch.Tensor):
        action = action.detach().cpu().numpy()
    return np.asarray(action, dtype=space.dtype)


class _HostToDevice:
    """Copies host arrays into fresh tensors on ``device``.

    On CUDA the copy goes through pinned staging buffers with ``non_blocking=True``, so the
    host does not wait for the transfer. A staging buffer is only rewritten after the
    previous step's transfers finished (one event wait, normally long past by then since
    the policy already consumed those observations).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._pinned: dict[str, torch.Tensor] = {}
        self._done: torch.cuda.Event | None = None

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        if self.device.type != "cuda":
            # torch.tensor copies: gymnasium may reuse the arrays it returned (copy=False).
            return {k: torch.tensor(a, dtype=_torch_dtype(a.dtype)) for k, a in arrays.items()}
        if self._done is not None:
            self._done.synchronize()
        out = {}
        for key, array in arrays.items():
            buf = self._pinned.get(key)
            if buf is None or tuple(buf.shape) != array.shape:
                buf = self._pinned[key] = torch.empty(array.shape, dtype=_torch_dtype(array.dtype), pin_memory=True)
            buf.numpy()[...] = array
            out[key] = buf.to(self.device, non_blocking=True)
        self._done = torch.cuda.current_stream(self.device).record_event()
        return out


class GymVecEnv(VecEnv):
    """A gymnasium ``VectorEnv`` (built with ``autoreset_mode=AutoresetMode.SAME_STEP``) as a VecEnv.

    ``seed`` seeds the first ``reset`` (copy ``i`` gets ``seed + i``) and the action spaces;
    an explicit ``reset(seed=...)`` overrides it.
    """

    def __init__(
        self,
        venv: gym.vector.VectorEnv,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ):
        mode = venv.metadata.get("autoreset_mode")
        if mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(
                f"GymVecEnv needs a vector env built with autoreset_mode=AutoresetMode.SAME_STEP, got {mode}"
            )
        obs_space = venv.single_observation_space
        if not isinstance(obs_space, _ARRAY_SPACES):
            raise ValueError(
                f"observation space {obs_space} is not supported: a VecEnv returns one tensor, so use "
                "Box, Discrete, MultiDiscrete or MultiBinary (gymnasium's FlattenObservation converts Dict/Tuple)"
            )
        if isinstance(obs_space, spaces.Box) and obs_space.dtype == np.float64:
            # Report the dtype the tensors really have, so buffers are allocated to match.
            obs_space = spaces.Box(obs_space.low.astype(np.float32), obs_space.high.astype(np.float32), dtype=np.float32)
        self.venv = venv
        self.num_envs = venv.num_envs
        self.device = torch.device(device)
        self.single_observation_space = obs_space
        self.single_action_space = venv.single_action_space
        self.env_id = env_id or (venv.spec.id if venv.spec is not None else type(venv).__name__)
        self._seed = seed
        if seed is not None:
            venv.action_space.seed(seed)
            venv.single_action_space.seed(seed)
        self._to_device = _HostToDevice(self.device)
        self.resumed_mid_episode = False  # set by load_state_dict

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if seed is None:
            seed, self._seed = self._seed, None
        else:
            self._seed = None
        with self._shapes_checked("reset()"):
            obs, info = self.venv.reset(seed=seed)
        return self._to_device({"obs": obs})["obs"], dict(info)

    @contextlib.contextmanager
    def _shapes_checked(self, call: str) -> Iterator[None]:
        """gymnasium's vector env copies each observation into a preallocated batch; one of another shape
        fails there with numpy's words. Say which environment and what shape it should have been."""
        try:
            yield
        except ValueError as exc:
            if "wrong shape" not in str(exc) and "could not broadcast" not in str(exc):
                raise
            raise ValueError(f"{self.env_id}: {call} returned an observation whose shape is not its observation "
                             f"space's {self.single_observation_space.shape}; fix the environment's {call} or its "
                             "observation_space.") from None

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        with self._shapes_checked("step()"):
            obs, reward, terminated, truncated, info = self.venv.step(_action_to_numpy(action, self.venv.action_space))
        info = dict(info)
        # gymnasium gives an object array holding the final obs where "_final_obs" is set;
        # turn it into a dense [N, ...] array that equals obs elsewhere.
        final_obs = obs.copy()
        mask = info.pop("_final_obs", None)
        objects = info.pop("final_obs", None)
        if mask is not None and mask.any():
            final_obs[mask] = np.stack(objects[mask])
        out = self._to_device(
            {
                "obs": obs,
                "final_obs": final_obs,
                "reward": reward.astype(np.float32, copy=False),
                "terminated": terminated.astype(bool, copy=False),
                "truncated": truncated.astype(bool, copy=False),
            }
        )
        info["final_obs"] = out["final_obs"]
        return out["obs"], out["reward"], out["terminated"], out["truncated"], info

    def state_dict(self) -> dict[str, Any]:
        """Nothing of the copies themselves: their state (physics, episode clocks, RNGs) could only be
        saved by pickling them, and a checkpoint never holds pickled objects, so a resumed run starts
        fresh episodes (the torch-native environments continue theirs). ``exact`` says which."""
        return {"exact": False}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Checkpoints of formats 1 and 2 pickled the copies; they are read only from a trusted file
        (`load_checkpoint(trust=True)`, which alone lets bytes through), and continue those episodes."""
        self.resumed_mid_episode = bool(state.get("exact")) and isinstance(self.venv, gym.vector.SyncVectorEnv)
        if self.resumed_mid_episode:
            self.venv.envs = pickle.loads(state["envs"])
            self._seed = state["seed"]

    def close(self) -> None:
        self.venv.close()
