"""envs/: equivalence with gymnasium's single environments, wrappers, errors, Atari, devices."""

from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs import ClipReward, EpisodeStatistics, GymVecEnv, ObservationNormalization, VecEnv, make
from envs.atari import register_ale
from rlcore.running_stats import RunningMeanStd


def _run_against_single_envs(env: VecEnv, steps: int, max_episode_steps: int = 25) -> list[list[float]]:
    """Step ``env`` (CartPole, seeded 0) and single gymnasium copies with the same actions,
    asserting equality at every step. Returns the finished episodes' returns per copy."""
    n = env.num_envs
    refs = [gym.make("CartPole-v1", max_episode_steps=max_episode_steps) for _ in range(n)]
    obs, _ = env.reset()
    ref_obs = np.stack([ref.reset(seed=i)[0] for i, ref in enumerate(refs)])
    torch.testing.assert_close(obs, torch.from_numpy(ref_obs))
    rng = np.random.default_rng(0)
    running = [0.0] * n
    finished: list[list[float]] = [[] for _ in range(n)]
    saw_terminated = saw_truncated = False
    for _ in range(steps):
        actions = rng.integers(0, 2, size=n)
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        assert obs.dtype == torch.float32 and reward.dtype == torch.float32
        assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
        for i, ref in enumerate(refs):
            r_obs, r_rew, r_term, r_trunc, _ = ref.step(int(actions[i]))
            assert reward[i].item() == r_rew
            assert terminated[i].item() == r_term and truncated[i].item() == r_trunc
            torch.testing.assert_close(info["final_obs"][i], torch.from_numpy(r_obs))
            running[i] += r_rew
            if r_term or r_trunc:
                finished[i].append(running[i])
                running[i] = 0.0
                r_obs, _ = ref.reset()
                assert info["episode_done"][i]
                assert info["episode_return"][i].item() == finished[i][-1]
            else:
                assert not info["episode_done"][i] and info["episode_return"][i].item() == 0.0
            torch.testing.assert_close(obs[i], torch.from_numpy(r_obs))
        saw_terminated |= bool(terminated.any())
        saw_truncated |= bool(truncated.any())
    assert saw_terminated and saw_truncated, "the test must cover both kinds of episode end"
    return finished


@pytest.mark.parametrize("vectorization,steps", [("sync", 300), ("async", 80)])
def test_autoreset_matches_single_gymnasium_envs(vectorization: str, steps: int) -> None:
    with make("CartPole-v1", num_envs=3, seed=0, vectorization=vectorization, max_episode_steps=25,
              backend="gymnasium") as env:
        _run_against_single_envs(env, steps)


def test_episode_statistics_match_hand_sums() -> None:
    with make("CartPole-v1", num_envs=3, seed=0, max_episode_steps=25, backend="gymnasium") as env:
        stats = env.find(EpisodeStatistics)
        assert stats is not None
        finished = _run_against_single_envs(env, 150)
        returns = [r for per_env in finished for r in per_env]
        # Per group of copies (here one copy per group), as several seeds trained at once log them.
        ret_sum, len_sum, count = stats.pop_finished(groups=3)
        assert count.tolist() == [len(per_env) for per_env in finished]
        assert ret_sum.tolist() == pytest.approx([sum(per_env) for per_env in finished])
        ret_sum, len_sum, count = ret_sum.sum(), len_sum.sum(), count.sum()
        assert count.item() == len(returns)
        assert ret_sum.item() == pytest.approx(sum(returns))
        # CartPole pays 1 per step, so lengths sum to the same total.
        assert len_sum.item() == pytest.approx(sum(returns))
        assert [t.item() for t in stats.pop_finished()] == [0.0, 0.0, 0]


class _ScriptedEnv(VecEnv):
    """A torch VecEnv replaying given rewards and terminations; observation = step count."""

    def __init__(self, rewards: torch.Tensor, terminated: torch.Tensor):
        self.rewards, self.terminated = rewards, terminated
        self.num_envs = rewards.shape[1]
        self.device = torch.device("cpu")
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.env_id = "Scripted"
        self.t = 0

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        self.t = 0
        return torch.zeros(self.num_envs, 1), {}

    def step(self, action: torch.Tensor):
        reward, terminated = self.rewards[self.t], self.terminated[self.t]
        self.t += 1
        obs = torch.full((self.num_envs, 1), float(self.t))
        return obs, reward, terminated, torch.zeros_like(terminated), {"final_obs": obs}


def test_episode_statistics_ring_keeps_last_100_in_order() -> None:
    # 150 copies all finishing on the first step: only the last 100 may stay in the ring.
    stats = EpisodeStatistics(_ScriptedEnv(torch.arange(150.0)[None], torch.ones(1, 150, dtype=torch.bool)))
    stats.reset()
    assert stats.recent_mean_return() is None
    stats.step(torch.zeros(150))
    assert stats.recent_mean_return() == pytest.approx(np.mean(np.arange(50, 150)))
    # Episodes spanning several steps, wrapping the ring many times.
    gen = torch.Generator().manual_seed(0)
    rewards = torch.rand(200, 7, generator=gen)
    terminated = torch.rand(200, 7, generator=gen) < 0.3
    stats = EpisodeStatistics(_ScriptedEnv(rewards, terminated))
    stats.reset()
    finished, running = [], np.zeros(7)
    for t in range(200):
        _, _, _, _, info = stats.step(torch.zeros(7))
        running += rewards[t].double().numpy()
        for i in range(7):
            if terminated[t, i]:
                finished.append(running[i])
                running[i] = 0.0
        torch.testing.assert_close(info["episode_length"] > 0, terminated[t])
    assert len(finished) > 300
    assert stats.recent_mean_return() == pytest.approx(np.mean(finished[-100:]))
    ret_sum, _, count = stats.pop_finished()
    assert count.item() == len(finished) and ret_sum.item() == pytest.approx(sum(finished))


def test_clip_reward_keeps_game_score_in_statistics() -> None:
    rewards = torch.tensor([[2.5, -3.0], [0.0, 1.0]])
    terminated = torch.tensor([[False, False], [True, True]])
    env = ClipReward(EpisodeStatistics(_ScriptedEnv(rewards, terminated)))
    env.reset()
    _, reward, *_ = env.step(torch.zeros(2))
    assert reward.tolist() == [1.0, -1.0]
    _, reward, _, _, info = env.step(torch.zeros(2))
    assert reward.tolist() == [0.0, 1.0]
    assert info["episode_return"].tolist() == [2.5, -2.0]


def test_observation_normalization_statistics_and_state() -> None:
    kwargs = {"num_envs": 4, "seed": 0, "max_episode_steps": 25}
    raw_env, norm_env = make("CartPole-v1", **kwargs), make("CartPole-v1", normalize_obs=True, **kwargs)
    norm = norm_env.find(ObservationNormalization)
    assert norm is not None and norm_env.single_observation_space.dtype == np.float32
    raw, _ = raw_env.reset()
    out, _ = norm_env.reset()
    seen = [raw]
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = torch.as_tensor(rng.integers(0, 2, size=4))
        raw, _, _, _, raw_info = raw_env.step(action)
        out, _, _, _, info = norm_env.step(action)
        seen.append(raw)
    seen_np = torch.cat(seen).double().numpy()
    torch.testing.assert_close(norm.obs_rms.mean, torch.from_numpy(seen_np.mean(0)))
    torch.testing.assert_close(norm.obs_rms.var, torch.from_numpy(seen_np.var(0)))
    assert norm.obs_rms.count.item() == len(seen_np)
    std = torch.sqrt(norm.obs_rms.var + 1e-8)
    torch.testing.assert_close(out, ((raw - norm.obs_rms.mean) / std).clamp(-10, 10).float())
    torch.testing.assert_close(info["final_obs"], ((raw_info["final_obs"] - norm.obs_rms.mean) / std).clamp(-10, 10).float())

    # state_dict round trip through the VecEnv checkpoint entry point.
    state = norm_env.state_dict()
    fresh = make("CartPole-v1", normalize_obs=True, **kwargs)
    fresh.load_state_dict(state)
    fresh_norm = fresh.find(ObservationNormalization)
    for key, value in state["obs_rms"].items():
        torch.testing.assert_close(getattr(fresh_norm.obs_rms, key), value)

    # training=False freezes the statistics.
    fresh_norm.training = False
    fresh.reset()
    fresh.step(torch.zeros(4, dtype=torch.int64))
    for key, value in state["obs_rms"].items():
        torch.testing.assert_close(getattr(fresh_norm.obs_rms, key), value)
    for env in (raw_env, norm_env, fresh):
        env.close()


def test_running_mean_std_merges_batches_exactly() -> None:
    data = torch.randn(1000, 3, dtype=torch.float64) * 5 + 2
    rms = RunningMeanStd((3,))
    for chunk in torch.split(data, [1, 7, 300, 692]):
        rms.update(chunk)
    torch.testing.assert_close(rms.mean, data.mean(0))
    torch.testing.assert_close(rms.var, data.var(0, unbiased=False))


def test_seeding_is_reproducible_and_reset_seed_overrides() -> None:
    with (make("CartPole-v1", num_envs=2, seed=7, backend="gymnasium") as a,
          make("CartPole-v1", num_envs=2, seed=7, backend="gymnasium") as b):
        torch.testing.assert_close(a.reset()[0], b.reset()[0])
        # A later unseeded reset does not reuse the seed; an explicit seed overrides.
        obs, _ = a.reset(seed=3)
        ref = np.stack([gym.make("CartPole-v1").reset(seed=s)[0] for s in (3, 4)])
        torch.testing.assert_close(obs, torch.from_numpy(ref))


def test_box_actions_and_float64_observations() -> None:
    with make("Pendulum-v1", num_envs=2, seed=0, backend="gymnasium") as env:
        env.reset()
        obs, reward, *_ = env.step(torch.tensor([[0.5], [-1.5]]))
        assert obs.shape == (2, 3) and reward.shape == (2,)

    class Float64Env(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float64)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            return np.zeros(2), {}

        def step(self, action: int):
            return np.full(2, 0.5), 1.0, True, False, {}

    venv = gym.vector.SyncVectorEnv([Float64Env] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env = GymVecEnv(venv, env_id="Float64")
    assert env.single_observation_space.dtype == np.float32
    env.reset()
    obs, _, terminated, _, info = env.step(torch.tensor([0, 1]))
    assert obs.dtype == torch.float32 and bool(terminated.all())
    torch.testing.assert_close(info["final_obs"], torch.full((2, 2), 0.5))
    torch.testing.assert_close(obs, torch.zeros(2, 2))

    with pytest.raises(ValueError, match="SAME_STEP"):
        GymVecEnv(gym.vector.SyncVectorEnv([Float64Env]))


def test_unknown_id_suggests_close_match() -> None:
    with pytest.raises(ValueError, match=r"'CartPol-v1'.*Did you mean: CartPole-v1.*rl list"):
        make("CartPol-v1")
    assert "CartPole-v1" in envs.list_envs()


@pytest.mark.parametrize(
    "kwargs,field",
    [({"num_envs": 0}, "num_envs"), ({"vectorization": "threads"}, "vectorization"), ({"device": "tpu"}, "device")],
)
def test_invalid_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make("CartPole-v1", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        make("CartPole-v1", device="cuda")


def test_missing_optional_dependencies_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ale_py", None)  # makes `import ale_py` fail
    with pytest.raises(gym.error.DependencyNotInstalled, match=r'pip install -e "\.\[atari\]"'):
        register_ale()
    monkeypatch.setitem(sys.modules, "mujoco", None)
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.mujoco")]:
        monkeypatch.delitem(sys.modules, name)  # so the entry point is imported afresh
    with pytest.raises(gym.error.DependencyNotInstalled, match=r'pip install -e "\.\[mujoco\]"'):
        make("Hopper-v5")


def test_atari_preprocessing() -> None:
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    with make("ALE/Pong-v5", num_envs=2, seed=0) as env:
        obs, _ = env.reset()
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8
        assert env.single_observation_space.shape == (4, 84, 84)
        for _ in range(5):
            obs, reward, _, _, info = env.step(torch.randint(0, env.single_action_space.n, (2,)))
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8 and reward.dtype == torch.float32
        assert info["final_obs"].dtype == torch.uint8
    with make("ALE/Pong-v5", num_envs=1, seed=0, atari_wrappers=False) as raw:
        assert raw.reset()[0].shape == (1, 210, 160, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tensors_land_on_cuda() -> None:
    with make("CartPole-v1", num_envs=2, seed=0, device="cuda", normalize_obs=True) as env:
        obs, _ = env.reset()
        assert obs.is_cuda
        for _ in range(30):
            obs, reward, terminated, truncated, info = env.step(torch.randint(0, 2, (2,), device="cuda"))
            assert all(t.is_cuda for t in (obs, reward, terminated, truncated, info["final_obs"], info["episode_return"]))
        assert all(t.is_cuda for t in env.find(EpisodeStatistics).pop_finished())


def test_backend_choice_and_its_errors() -> None:
    assert type(make("CartPole-v1").unwrapped).__name__ == "CartPoleVecEnv"  # auto: torch-native where it exists
    assert isinstance(make("CartPole-v1", backend="gymnasium").unwrapped, GymVecEnv)
    assert isinstance(make("CartPole-v1", render_mode="rgb_array").unwrapped, GymVecEnv)  # only gymnasium's renders
    assert isinstance(make("Taxi-v4").unwrapped, GymVecEnv)  # no torch-native version
    with pytest.raises(ValueError, match="backend must be one of"):
        make("CartPole-v1", backend="jax")
    with pytest.raises(ValueError, match="no torch-native version.*Acrobot-v1"):
        make("Taxi-v4", backend="torch")
    with pytest.raises(ValueError, match="does not take render_mode"):
        make("CartPole-v1", backend="torch", render_mode="human")
    with pytest.raises(ValueError, match="vectorization"):
        make("CartPole-v1", backend="torch", vectorization="async")
    with pytest.raises(ValueError, match="num_envs"):
        make("CartPole-v1", num_envs=0, backend="torch")


def test_an_observation_of_the_wrong_shape_names_the_environment_and_the_shape():
    class Bad(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (4,))
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            return np.zeros(3, dtype=np.float32), {}

        def step(self, action):
            return np.zeros(4, dtype=np.float32), 0.0, False, False, {}

    gym.register("WrongShape-v0", entry_point=lambda: Bad(), disable_env_checker=True)
    try:
        with pytest.raises(ValueError, match=r"WrongShape-v0: reset\(\) returned an observation whose shape is not its "
                                             r"observation space's \(4,\)"):
            envs.make("WrongShape-v0", num_envs=2).reset()
    finally:
        gym.registry.pop("WrongShape-v0")
