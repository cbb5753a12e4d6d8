"""envs/interop.py: the torch-native environments as gymnasium VectorEnvs, and any VecEnv for SB3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs.classic import TORCH_ENVS


@pytest.mark.parametrize("env_id", sorted(TORCH_ENVS))
def test_make_vec_gives_a_gymnasium_vector_env_that_keeps_its_contract(env_id: str):
    venv = gym.make_vec(f"rlcore/{env_id}", num_envs=64, vectorization_mode="vector_entry_point", seed=3)
    assert isinstance(venv, gym.vector.VectorEnv) and venv.num_envs == 64
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert venv.observation_space.shape == (64, *venv.single_observation_space.shape)
    obs, _ = venv.reset(seed=3)
    assert isinstance(obs, np.ndarray) and venv.observation_space.contains(obs)
    venv.action_space.seed(0)
    ended = 0
    for _ in range(1_000):
        action = venv.action_space.sample()
        obs, reward, terminated, truncated, info = venv.step(action)
        assert venv.observation_space.contains(obs) and reward.shape == (64,) and reward.dtype == np.float32
        assert terminated.dtype == truncated.dtype == np.bool_
        done = terminated | truncated
        if done.any():
            assert (info["_final_obs"] == done).all()
            assert all(info["final_obs"][i].shape == venv.single_observation_space.shape for i in np.flatnonzero(done))
            assert all(info["final_obs"][i] is None for i in np.flatnonzero(~done))
            ended += int(done.sum())
        else:
            assert "final_obs" not in info
    assert ended > 0  # every task ends or truncates within 1,000 steps (time limits of 200 to 999)
    venv.close()


def test_the_same_seed_gives_the_same_episodes():
    def rollout() -> list[np.ndarray]:
        venv = gym.make_vec("rlcore/Pendulum-v1", num_envs=4, vectorization_mode="vector_entry_point")
        out = [venv.reset(seed=11)[0]]
        for t in range(5):
            out.append(venv.step(np.full((4, 1), 0.5, dtype=np.float32))[0])
        return out

    assert all(np.array_equal(a, b) for a, b in zip(rollout(), rollout()))


def test_sb3_trains_on_the_torch_native_cartpole():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    torch.manual_seed(0)
    venv = envs.to_sb3(envs.make("CartPole-v1", num_envs=8, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                learning_rate=1e-3, seed=0, verbose=0)
    model.learn(20_000)
    mean, _ = evaluate_policy(model, Monitor(gym.make("CartPole-v1")), n_eval_episodes=10, deterministic=True)
    assert mean >= 100, mean  # a random policy scores about 22


def test_sb3_sees_terminal_observations_and_truncations():
    pytest.importorskip("stable_baselines3")
    venv = envs.to_sb3(envs.make("Pendulum-v1", num_envs=2, seed=0))
    venv.seed(5)
    venv.reset()
    for t in range(200):
        venv.step_async(np.zeros((2, 1), dtype=np.float32))
        obs, reward, done, infos = venv.step_wait()
    assert done.all() and all(info["TimeLimit.truncated"] for info in infos)  # Pendulum only truncates, at 200
    assert all(info["terminal_observation"].shape == (3,) for info in infos)
    assert not np.array_equal(obs, np.stack([info["terminal_observation"] for info in infos]))  # obs starts anew
