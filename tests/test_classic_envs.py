"""envs/classic.py: the torch-native classic-control envs against gymnasium's, step by step.

Three kinds of equivalence: one step at a time in float32 (gymnasium re-synchronised to the torch
state before every step, so chaotic dynamics cannot drift apart), whole free-running trajectories
in float64, and reset distributions. Then seeding, checkpoints, the auto-reset contract, devices
and errors.
"""

from __future__ import annotations

import io
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs.classic import TORCH_ENVS, CartPoleVecEnv, PendulumVecEnv, TorchVecEnv
from envs.core import VecEnv

ENV_IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]
CARTPOLE_THETA_THRESHOLD = 12 * 2 * math.pi / 360
_ACTION_SPACES = {env_id: gym.make(env_id).action_space for env_id in ENV_IDS}


# ----- helpers -----------------------------------------------------------------------------
def _policy(env_id: str, obs: np.ndarray) -> np.ndarray:
    """A deterministic heuristic per env that reaches the interesting episode ends: CartPole
    balances to the time limit, Acrobot and the mountain cars reach their goals; the
    continuous ones also ask for more than the allowed force, so clipping is exercised."""
    if env_id == "CartPole-v1":
        return (obs[:, 2] + 0.5 * obs[:, 3] + 0.05 * obs[:, 0] + 0.2 * obs[:, 1] > 0).astype(np.int64)
    if env_id == "Acrobot-v1":
        return (np.sign(obs[:, 4] + 0.3 * obs[:, 5]) + 1).astype(np.int64)
    if env_id == "MountainCar-v0":
        return np.where(obs[:, 1] > 0, 2, 0)
    if env_id == "MountainCarContinuous-v0":
        return np.where(obs[:, 1:2] >= 0, 1.2, -1.2).astype(np.float32)
    return np.clip(-1.5 * obs[:, 2:3], -3.0, 3.0).astype(np.float32)  # Pendulum


def _random_actions(env_id: str, n: int, rng: np.random.Generator) -> np.ndarray:
    space = _ACTION_SPACES[env_id]
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=n)
    high = float(space.high[0])
    return rng.uniform(-1.5 * high, 1.5 * high, size=(n, 1)).astype(np.float32)  # beyond the bounds too


def _gym_action(action: np.ndarray) -> Any:
    return int(action) if action.ndim == 0 else action


def _sync(ref: gym.Env, env_id: str, state: np.ndarray, elapsed: int) -> None:
    """Put gymnasium's copy into a given physical state and episode clock."""
    unwrapped = ref.unwrapped
    # gymnasium keeps MountainCarContinuous's state in float32 (its step stores it so), the others in float64.
    unwrapped.state = state.astype(np.float32 if env_id == "MountainCarContinuous-v0" else np.float64)
    if env_id == "CartPole-v1":
        unwrapped.steps_beyond_terminated = None
    assert isinstance(ref, gym.wrappers.TimeLimit)
    ref._elapsed_steps = int(elapsed)


def _obs_from_state(env_id: str, state: np.ndarray) -> np.ndarray:
    """gymnasium's observation of a [M, state_dim] state, in float64."""
    if env_id == "Acrobot-v1":
        s = state
        return np.stack([np.cos(s[:, 0]), np.sin(s[:, 0]), np.cos(s[:, 1]), np.sin(s[:, 1]), s[:, 2], s[:, 3]], 1)
    if env_id == "Pendulum-v1":
        return np.stack([np.cos(state[:, 0]), np.sin(state[:, 0]), state[:, 1]], 1)
    return state


def _termination_margin(env_id: str, obs: np.ndarray, kwargs: dict[str, Any]) -> np.ndarray:
    """How far each observed state is from the edge of the termination region (inf: no termination)."""
    obs = obs.astype(np.float64)
    if env_id == "CartPole-v1":
        return np.minimum(np.abs(np.abs(obs[:, 0]) - 2.4), np.abs(np.abs(obs[:, 2]) - CARTPOLE_THETA_THRESHOLD))
    if env_id == "Acrobot-v1":  # -cos(t1) - cos(t1 + t2) > 1, with cos(t1 + t2) from the observed cos/sin
        height = -obs[:, 0] - (obs[:, 0] * obs[:, 2] - obs[:, 1] * obs[:, 3])
        return np.abs(height - 1.0)
    if env_id in ("MountainCar-v0", "MountainCarContinuous-v0"):
        goal = 0.5 if env_id == "MountainCar-v0" else 0.45
        return np.minimum(np.abs(obs[:, 0] - goal), np.abs(obs[:, 1] - kwargs.get("goal_velocity", 0)))
    return np.full(len(obs), np.inf)


def _assert_initial_states(env_id: str, state: np.ndarray) -> None:
    """``state`` [M, state_dim] lies where gymnasium's reset puts it."""
    if env_id == "CartPole-v1":
        assert np.all(np.abs(state) <= 0.05)
    elif env_id == "Acrobot-v1":
        assert np.all(np.abs(state) <= 0.1)
        assert np.array_equal(state, state.astype(np.float32).astype(np.float64)), "gymnasium stores it as float32"
    elif env_id in ("MountainCar-v0", "MountainCarContinuous-v0"):
        assert np.all((state[:, 0] >= -0.6) & (state[:, 0] <= -0.4)) and np.all(state[:, 1] == 0)
    else:
        assert np.all(np.abs(state[:, 0]) <= math.pi) and np.all(np.abs(state[:, 1]) <= 1.0)


def _state_and_clock(env: TorchVecEnv) -> tuple[np.ndarray, np.ndarray]:
    sd = env.state_dict()
    return sd["state"].double().numpy(), sd["elapsed"].numpy()


# ----- spaces and registry -------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_ids_and_time_limits_match_gymnasium(env_id: str) -> None:
    env = TORCH_ENVS[env_id](num_envs=2)
    ref = gym.make(env_id)
    assert isinstance(env, VecEnv) and env.env_id == env_id
    assert env.single_observation_space == ref.observation_space
    assert env.single_observation_space.dtype == np.float32
    assert env.single_action_space == ref.action_space
    assert env.max_episode_steps == gym.spec(env_id).max_episode_steps
    assert TORCH_ENVS[env_id].default_max_episode_steps == gym.spec(env_id).max_episode_steps


# ----- 1a. one step at a time, float32 ------------------------------------------------------------
# Per env: relative and absolute tolerance of a float32 step against gymnasium's float64 step
# from the same start. Acrobot's RK4 goes through four derivative evaluations with velocities up
# to 9 pi, so its float32 result carries a few float32 ulps of those velocities.
FLOAT32_TOL = {
    "CartPole-v1": (1e-5, 1e-5),
    "Acrobot-v1": (1e-5, 2e-5),
    "MountainCar-v0": (1e-5, 1e-6),
    "MountainCarContinuous-v0": (1e-5, 1e-6),
    "Pendulum-v1": (1e-5, 1e-5),
}

ONE_STEP_CASES = [
    ("CartPole-v1", {}, 1100),
    ("Acrobot-v1", {}, 1000),
    ("MountainCar-v0", {}, 1000),
    ("MountainCarContinuous-v0", {}, 1000),
    ("Pendulum-v1", {}, 1000),
    # the gymnasium keyword arguments, with a custom time limit
    ("CartPole-v1", {"sutton_barto_reward": True, "max_episode_steps": 60}, 300),
    ("MountainCar-v0", {"goal_velocity": 0.02, "max_episode_steps": 150}, 400),
    ("MountainCarContinuous-v0", {"goal_velocity": 0.01, "max_episode_steps": 150}, 400),
    ("Pendulum-v1", {"g": 9.81, "max_episode_steps": 70}, 300),
]


@pytest.mark.parametrize("env_id,kwargs,steps", ONE_STEP_CASES, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_each_step_matches_gymnasium_float32(env_id: str, kwargs: dict[str, Any], steps: int) -> None:
    """8 copies: 0-3 act at random, 4-7 follow a heuristic, for enough steps to see terminations,
    truncations and auto-resets. Before every step each gymnasium copy is put into the torch
    copy's state and episode clock, so every step is compared from identical starts."""
    n = 8
    env = TORCH_ENVS[env_id](num_envs=n, seed=0, **kwargs)
    refs = [gym.make(env_id, **kwargs) for _ in range(n)]
    for ref in refs:
        ref.reset(seed=0)
    rng = np.random.default_rng(0)
    rtol, atol = FLOAT32_TOL[env_id]
    obs, _ = env.reset()
    terminations = truncations = near_threshold = 0
    for t in range(steps):
        state, clock = _state_and_clock(env)
        actions = _random_actions(env_id, n, rng)
        actions[4:] = _policy(env_id, obs.numpy())[4:]
        ref_out = []
        for i, ref in enumerate(refs):
            _sync(ref, env_id, state[i], clock[i])
            ref_out.append(ref.step(_gym_action(actions[i])))
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        final_obs = info["final_obs"]
        assert obs.dtype == final_obs.dtype == reward.dtype == torch.float32
        assert terminated.dtype == truncated.dtype == torch.bool
        assert obs.shape == final_obs.shape == (n, *env.single_observation_space.shape)

        ref_obs = np.stack([out[0] for out in ref_out])
        ref_reward = np.array([out[1] for out in ref_out], dtype=np.float32)
        ref_terminated = np.array([out[2] for out in ref_out])
        ref_truncated = np.array([out[3] for out in ref_out])
        np.testing.assert_allclose(final_obs.numpy(), ref_obs, rtol=rtol, atol=atol, err_msg=f"step {t}")
        np.testing.assert_array_equal(truncated.numpy(), ref_truncated, err_msg=f"step {t}")
        # The two next states differ by float32 rounding, so where one lies within that rounding
        # of a termination threshold the flags may differ. Allowed only there, and only if the
        # torch flag is what gymnasium's rule says for the torch state (the flags decided on the
        # same state agree); the rewards then follow the flags.
        mismatch = terminated.numpy() != ref_terminated
        if mismatch.any():
            margin = _termination_margin(env_id, final_obs.numpy(), kwargs)
            assert np.all(margin[mismatch] < 1e-5), f"step {t}: terminated differs away from a threshold"
            near_threshold += int(mismatch.sum())
        same = ~mismatch
        np.testing.assert_array_equal(reward.numpy()[same], ref_reward[same], err_msg=f"step {t}")

        done = (terminated | truncated).numpy()
        np.testing.assert_array_equal(obs.numpy()[~done], final_obs.numpy()[~done])
        new_state, new_clock = _state_and_clock(env)
        assert np.all(new_clock[done] == 0) and np.all(new_clock[~done] == clock[~done] + 1)
        _assert_initial_states(env_id, new_state[done])
        np.testing.assert_allclose(obs.numpy()[done], _obs_from_state(env_id, new_state[done]), rtol=1e-6, atol=1e-6)
        terminations += int(terminated.sum())
        truncations += int(truncated.sum())
    assert near_threshold <= 2, "termination flags should differ only in rare float32 rounding cases"
    assert truncations > 0, "the run must reach the time limit"
    if env_id != "Pendulum-v1":  # Pendulum never terminates
        assert terminations > 0, "the run must see terminations"


# ----- 1b. whole trajectories, float64 ------------------------------------------------------------
# Per env: (tolerance, steps compared per episode). Two envs amplify rounding: torch's and numpy's
# sin/cos differ in the last bit for ~0.2% of arguments, and the order of floating-point operations
# differs. CartPole under a fixed action sequence is unstable about the upright pole (differences
# grow ~8% a step), so 1e-16 becomes 1e-9 after ~200 steps of a balancing policy: 150 are compared.
# Acrobot is chaotic: driven by the swinging heuristic, differences pass 1e-9 after 140-210 steps
# (random actions: after ~400), so 100 are compared, and its episode ends are left to the one-step
# test. MountainCarContinuous: gymnasium stores its state in float32, so agreement is float32's.
FLOAT64_CASES = {
    "CartPole-v1": (1e-9, 150),
    "Acrobot-v1": (1e-9, 100),
    "MountainCar-v0": (1e-9, 200),
    "MountainCarContinuous-v0": (1e-4, 999),
    "Pendulum-v1": (1e-9, 200),
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_float64_trajectories_match_gymnasium(env_id: str) -> None:
    """Free running (no re-synchronisation) from gymnasium's own initial states, four episodes
    (two with random actions, two with the heuristic) up to the horizon above or their end."""
    tol, horizon = FLOAT64_CASES[env_id]
    episode_ends = 0
    for episode in range(4):
        ref = gym.make(env_id)
        ref.reset(seed=episode)
        env = TORCH_ENVS[env_id](num_envs=1, seed=episode, dtype=torch.float64)
        env.reset()
        obs = env.set_state(torch.as_tensor(np.asarray(ref.unwrapped.state, dtype=np.float64))[None], elapsed=0)
        rng = np.random.default_rng(episode)
        for t in range(horizon):
            action = _policy(env_id, obs.numpy()) if episode % 2 else _random_actions(env_id, 1, rng)
            _, ref_reward, ref_terminated, ref_truncated, _ = ref.step(_gym_action(action[0]))
            obs, reward, terminated, truncated, info = env.step(torch.as_tensor(action))
            assert obs.dtype == torch.float64
            ref_state = np.asarray(ref.unwrapped.state, dtype=np.float64)[None]
            np.testing.assert_allclose(
                info["final_obs"].numpy(), _obs_from_state(env_id, ref_state), rtol=tol, atol=tol, err_msg=f"step {t}"
            )
            assert (bool(terminated[0]), bool(truncated[0])) == (ref_terminated, ref_truncated), f"episode {episode} step {t}"
            assert reward[0].item() == np.float32(ref_reward)
            if ref_terminated or ref_truncated:
                episode_ends += 1
                break
            np.testing.assert_allclose(env.get_state().numpy(), ref_state, rtol=tol, atol=tol, err_msg=f"step {t}")
    if env_id != "Acrobot-v1":
        assert episode_ends > 0, "some compared episode must end within the horizon"


def test_acrobot_from_extreme_states_wraps_angles_like_gymnasium() -> None:
    """At the velocity bounds one RK4 step can turn a link by more than 2 pi; gymnasium's wrap()
    then loops several times. The torch wrap must land on the same angle in [-pi, pi]."""
    from gymnasium.envs.classic_control.acrobot import rk4

    n = 256
    rng = np.random.default_rng(0)
    bounds = np.array([math.pi, math.pi, 4 * math.pi, 9 * math.pi])
    states = rng.uniform(-1, 1, size=(n, 4)) * bounds
    states[:, 2:] = np.sign(states[:, 2:]) * bounds[2:]  # velocities at their bounds
    actions = rng.integers(0, 3, size=n)
    env = TORCH_ENVS["Acrobot-v1"](num_envs=n, dtype=torch.float64)
    env.reset()
    env.set_state(torch.as_tensor(states))
    _, _, terminated, _, _ = env.step(torch.as_tensor(actions))
    next_states = env.get_state().numpy()  # restarted where terminated: those are skipped
    ref = gym.make("Acrobot-v1")
    ref.reset(seed=0)
    unwrapped = ref.unwrapped
    multi_turn = 0
    for i in np.flatnonzero(~terminated.numpy()):
        _sync(ref, "Acrobot-v1", states[i], 0)
        ref.step(int(actions[i]))
        np.testing.assert_allclose(next_states[i], unwrapped.state, rtol=1e-9, atol=1e-9)
        raw = rk4(unwrapped._dsdt, np.append(states[i], actions[i] - 1.0), [0, unwrapped.dt])
        multi_turn += int(np.abs(raw[:2]).max() > 3 * math.pi)
    assert multi_turn > 0, "some step must wrap by more than one turn"


# ----- 1c. reset distribution -----------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reset_distribution_matches_gymnasium(env_id: str, dtype: torch.dtype) -> None:
    n = 4096
    env = TORCH_ENVS[env_id](num_envs=n, seed=0, dtype=dtype)
    env.reset()
    state = env.get_state().double().numpy()
    _assert_initial_states(env_id, state)
    # Each random coordinate is uniform on gymnasium's interval: check its mean and spread.
    intervals = {
        "CartPole-v1": [(-0.05, 0.05)] * 4,
        "Acrobot-v1": [(-0.1, 0.1)] * 4,
        "MountainCar-v0": [(-0.6, -0.4)],
        "MountainCarContinuous-v0": [(-0.6, -0.4)],
        "Pendulum-v1": [(-math.pi, math.pi), (-1.0, 1.0)],
    }[env_id]
    for k, (low, high) in enumerate(intervals):
        column = state[:, k]
        width = high - low
        assert abs(column.mean() - (low + high) / 2) < 0.03 * width
        assert abs(column.std() - width / math.sqrt(12)) < 0.03 * width
        assert column.min() < low + 0.01 * width and column.max() > high - 0.01 * width
        assert len(np.unique(column)) > 0.99 * n
    # Auto-resets draw from the same distribution: the states that follow a time-limit reset.
    env = TORCH_ENVS[env_id](num_envs=256, seed=1, dtype=dtype, max_episode_steps=1)
    env.reset()
    zero = torch.zeros((256, 1)) if isinstance(env.single_action_space, gym.spaces.Box) else torch.zeros(256, dtype=torch.long)
    _, _, _, truncated, _ = env.step(zero)
    assert truncated.all()
    _assert_initial_states(env_id, env.get_state().double().numpy())


# ----- actions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_action_dtypes_and_shapes_give_the_same_step(env_id: str) -> None:
    n = 6
    base = _random_actions(env_id, n, np.random.default_rng(0))
    if base.ndim == 1:
        variants = [torch.as_tensor(base), torch.as_tensor(base, dtype=torch.int32), torch.as_tensor(base, dtype=torch.uint8)]
    else:
        variants = [torch.as_tensor(base), torch.as_tensor(base[:, 0]), torch.as_tensor(base, dtype=torch.float64)]
    results = []
    for action in variants:
        env = TORCH_ENVS[env_id](num_envs=n, seed=0)
        env.reset()
        results.append(env.step(action))
    for other in results[1:]:
        for a, b in zip(results[0][:4], other[:4], strict=True):
            assert torch.equal(a, b)


# ----- 2. seeding and checkpoints -------------------------------------------------------------------
def _rollout(env: TorchVecEnv, steps: int, seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(_random_actions(env.env_id, env.num_envs, rng)))
        out += [obs, reward, terminated, truncated, info["final_obs"]]
    return out


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory_and_different_seed_differs(env_id: str) -> None:
    cls = TORCH_ENVS[env_id]
    runs = []
    for seed in (3, 3, 4):
        env = cls(num_envs=16, seed=seed, max_episode_steps=40)
        runs.append([env.reset()[0], *_rollout(env, 120)])
    assert _same(runs[0], runs[1])
    assert not torch.equal(runs[0][0], runs[2][0])
    # reset(seed=...) reseeds; a later reset() continues the stream instead.
    env = cls(num_envs=16)
    first = env.reset(seed=3)[0]
    assert torch.equal(first, runs[0][0])
    assert not torch.equal(env.reset()[0], first)
    assert torch.equal(env.reset(seed=3)[0], first)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_state_dict_round_trip_continues_exactly(env_id: str) -> None:
    cls = TORCH_ENVS[env_id]
    env = cls(num_envs=8, seed=0, max_episode_steps=30)
    env.reset()
    _rollout(env, 45)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    expected = _rollout(env, 60, seed=1)
    resumed = cls(num_envs=8, seed=123, max_episode_steps=30)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    assert _same(_rollout(resumed, 60, seed=1), expected)
    with pytest.raises(ValueError, match="state_dict is for"):
        TORCH_ENVS["CartPole-v1" if env_id != "CartPole-v1" else "Acrobot-v1"](num_envs=8).load_state_dict(env.state_dict())


# ----- 3. auto-reset contract and time limit -------------------------------------------------------
def test_final_obs_and_time_limit_keep_terminated_and_truncated_apart() -> None:
    """4 CartPole copies, time limit 5: copies 0 and 1 balance until truncated; copy 2 falls on its
    first step (terminated only); copy 3 falls on the last step the time limit allows (both flags,
    as gymnasium's TimeLimit reports). Each copy is also stepped in gymnasium alongside."""
    limit = 5
    env = CartPoleVecEnv(num_envs=4, seed=0, max_episode_steps=limit, dtype=torch.float64)
    env.reset()
    falling = [0.0, 0.0, 0.2, 2.0]
    start = np.array([[0.0] * 4, [0.01, 0.0, -0.01, 0.0], falling, falling])
    clock = [0, 0, 0, limit - 1]
    env.set_state(torch.as_tensor(start), elapsed=torch.tensor(clock))
    refs = [gym.make("CartPole-v1", max_episode_steps=limit) for _ in range(4)]
    for ref, state, elapsed in zip(refs, start, clock, strict=True):
        ref.reset(seed=0)
        _sync(ref, "CartPole-v1", state, elapsed)

    finished: set[int] = set()
    expected_ends = {  # step: (terminated, truncated)
        1: ([False, False, True, True], [False, False, False, True]),
        limit: ([False] * 4, [True, True, False, False]),
    }
    for step in range(1, limit + 1):
        actions = [step % 2, (step + 1) % 2, 0, 0]
        obs, reward, terminated, truncated, info = env.step(torch.tensor(actions))
        final_obs = info["final_obs"]
        assert final_obs.shape == obs.shape and final_obs.dtype == obs.dtype
        assert (terminated.tolist(), truncated.tolist()) == expected_ends.get(step, ([False] * 4, [False] * 4)), step
        assert reward.tolist() == [1.0] * 4
        for i, ref in enumerate(refs):
            if i in finished:
                continue  # copies 2 and 3 after their first episode: the next ones start at random
            ref_obs, _, ref_terminated, ref_truncated, _ = ref.step(actions[i])
            assert (ref_terminated, ref_truncated) == (terminated[i].item(), truncated[i].item())
            np.testing.assert_allclose(final_obs[i].numpy(), ref_obs, rtol=1e-6, atol=1e-6)
            if ref_terminated or ref_truncated:
                finished.add(i)
        done = terminated | truncated
        assert torch.equal(obs[~done], final_obs[~done])  # no episode ended: obs is the last obs
        if done.any():  # an episode ended: final_obs is its last obs, obs the next episode's first
            assert not torch.equal(obs[done], final_obs[done])
            _assert_initial_states("CartPole-v1", obs[done].numpy())
        assert env.state_dict()["elapsed"].tolist() == [0 if d else c for d, c in zip(done.tolist(), [step] * 2 + [step - 1] * 2)]
    assert final_obs[0, 2].abs() < CARTPOLE_THETA_THRESHOLD  # truncated mid-balance, not fallen


def test_final_obs_is_a_separate_full_tensor_even_without_episode_ends() -> None:
    env = PendulumVecEnv(num_envs=3, seed=0)
    obs0, info0 = env.reset()
    assert info0 == {}
    obs, _, terminated, truncated, info = env.step(torch.zeros(3, 1))
    assert not (terminated | truncated).any()
    assert torch.equal(obs, info["final_obs"]) and obs.data_ptr() != info["final_obs"].data_ptr()
    # writing into a returned observation does not change the environment
    env = CartPoleVecEnv(num_envs=3, seed=0)
    obs, _ = env.reset()
    before = env.get_state()
    obs.zero_()
    assert torch.equal(env.get_state(), before)


# ----- 4. devices ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_runs_on_cuda_and_matches_cpu(env_id: str) -> None:
    cls = TORCH_ENVS[env_id]
    cpu, gpu = cls(num_envs=64, seed=0, dtype=torch.float64), cls(num_envs=64, device="cuda", seed=0, dtype=torch.float64)
    cpu.reset()
    gpu.reset()
    gpu.set_state(cpu.get_state())
    rng = np.random.default_rng(0)
    for _ in range(50):
        actions = torch.as_tensor(_random_actions(env_id, 64, rng))
        out_cpu = cpu.step(actions)  # a CPU action tensor is moved to the env's device
        out_gpu = gpu.step(actions.cuda())
        for tensor in (*out_gpu[:4], out_gpu[4]["final_obs"]):
            assert tensor.device.type == "cuda"
        torch.testing.assert_close(out_gpu[4]["final_obs"].cpu(), out_cpu[4]["final_obs"], rtol=1e-9, atol=1e-9)
        assert torch.equal(out_gpu[2].cpu(), out_cpu[2]) and torch.equal(out_gpu[3].cpu(), out_cpu[3])
        gpu.set_state(cpu.get_state(), elapsed=cpu.state_dict()["elapsed"])  # resets draw from different generators


# ----- 5. errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_mode_is_refused_with_a_pointer_to_gymnasium(env_id: str) -> None:
    with pytest.raises(ValueError, match='backend="gymnasium"'):
        TORCH_ENVS[env_id](num_envs=1, render_mode="rgb_array")


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "4"])
def test_bad_num_envs_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="num_envs"):
        CartPoleVecEnv(num_envs=bad)


def test_other_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_episode_steps"):
        CartPoleVecEnv(max_episode_steps=0)
    with pytest.raises(ValueError, match="dtype"):
        CartPoleVecEnv(dtype=torch.float16)
    with pytest.raises(ValueError, match="seed"):
        CartPoleVecEnv(seed=1.5)
    env = CartPoleVecEnv(num_envs=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        env.set_state(torch.zeros(3, 4))
