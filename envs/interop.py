"""Our VecEnvs seen by other libraries: as a gymnasium `VectorEnv` (numpy arrays, registered under
`rlcore/<id>` for `gym.make_vec`) and as a Stable-Baselines3 `VecEnv` (`to_sb3`).

Both keep our same-step auto-reset: where copy i's episode ended, `obs[i]` already starts the next
one. gymnasium is told so (`metadata["autoreset_mode"] = SAME_STEP`) and gets the finished episodes'
last observations in `info["final_obs"]` with the mask `info["_final_obs"]`, as its own vector
environments give them in that mode; SB3 gets them as each copy's `info["terminal_observation"]`,
and time-limit truncations as `info["TimeLimit.truncated"]`, so its bootstrapping is right.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.classic import TORCH_ENVS
from envs.core import VecEnv


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


class GymnasiumVectorEnv(gym.vector.VectorEnv):
    """A VecEnv as a gymnasium `VectorEnv`: numpy in and out, same-step auto-reset."""

    def __init__(self, env: VecEnv):
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.render_mode = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if isinstance(seed, list):  # one seed per copy: ours seed copy i with seed + i from one
            seed = seed[0]
        obs, _ = self.env.reset(seed=seed)
        return _to_numpy(obs), {}

    def step(self, actions: np.ndarray):
        action = torch.as_tensor(np.asarray(actions), device=self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = _to_numpy(terminated | truncated)
        out_info: dict[str, Any] = {}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            final_obs = _to_numpy(info["final_obs"])
            for i in np.flatnonzero(done):
                final[i] = final_obs[i]
            out_info = {"final_obs": final, "_final_obs": done}
        return _to_numpy(obs), _to_numpy(reward), _to_numpy(terminated), _to_numpy(truncated), out_info

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def make_gymnasium_vector(env_id: str, num_envs: int = 1, device: str = "cpu", seed: int | None = None,
                          **kwargs: Any) -> GymnasiumVectorEnv:
    """The `vector_entry_point` of `rlcore/<id>`: the torch-native `env_id` as a gymnasium VectorEnv."""
    return GymnasiumVectorEnv(TORCH_ENVS[env_id](num_envs=num_envs, device=device, seed=seed, **kwargs))


def register_with_gymnasium() -> None:
    """`gym.make_vec("rlcore/CartPole-v1", num_envs=4096, vectorization_mode="vector_entry_point")` and the
    same for every torch-native environment; called when `envs` is imported."""
    for env_id in TORCH_ENVS:
        name = f"rlcore/{env_id}"
        if name not in gym.registry:
            gym.register(name, vector_entry_point=partial(make_gymnasium_vector, env_id))


def to_sb3(env: VecEnv) -> Any:
    """`env` as a Stable-Baselines3 VecEnv, so SB3's algorithms train on it (e.g. on the torch-native CartPole)."""
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv as SB3VecEnv

    class SB3Adapter(SB3VecEnv):
        def __init__(self, inner: VecEnv):
            self.inner = inner
            super().__init__(inner.num_envs, inner.single_observation_space, inner.single_action_space)
            self._actions: np.ndarray | None = None
            self._seed: int | None = None

        def reset(self) -> np.ndarray:
            obs, _ = self.inner.reset(seed=self._seed)
            self._seed = None
            return _to_numpy(obs)

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self):
            action = torch.as_tensor(np.asarray(self._actions), device=self.inner.device)
            if isinstance(self.inner.single_action_space, gym.spaces.Box):
                action = action.reshape(self.num_envs, *self.inner.single_action_space.shape)
            obs, reward, terminated, truncated, info = self.inner.step(action)
            done = _to_numpy(terminated | truncated)
            final_obs, trunc = _to_numpy(info["final_obs"]), _to_numpy(truncated & ~terminated)
            infos = [{"terminal_observation": final_obs[i], "TimeLimit.truncated": bool(trunc[i])} if done[i] else {}
                     for i in range(self.num_envs)]
            return _to_numpy(obs), _to_numpy(reward), done, infos

        def seed(self, seed: int | None = None) -> list[int | None]:
            self._seed = seed
            return [seed] * self.num_envs

        def close(self) -> None:
            self.inner.close()

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            return [getattr(self.inner, attr_name, None)] * len(self._indices(indices))

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            setattr(self.inner, attr_name, value)

        def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
            return [getattr(self.inner, method_name)(*args, **kwargs)] * len(self._indices(indices))

        def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
            return [False] * len(self._indices(indices))

        def _indices(self, indices: Any) -> list[int]:
            if indices is None:
                return list(range(self.num_envs))
            return [indices] if isinstance(indices, int) else list(indices)

    return SB3Adapter(env)
