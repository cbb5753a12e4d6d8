"""Gymnasium's classic-control environments as batched torch math: N copies step as a few tensor ops.

``CartPoleVecEnv``, ``AcrobotVecEnv``, ``MountainCarVecEnv``, ``MountainCarContinuousVecEnv`` and
``PendulumVecEnv`` re-implement gymnasium 1.4's CartPole-v1, Acrobot-v1, MountainCar-v0,
MountainCarContinuous-v0 and Pendulum-v1 as returned by ``gymnasium.make`` (TimeLimit included):
the same spaces, dynamics and integrators (CartPole's Euler step, Acrobot's RK4 with the book's
equations and no torque noise), rewards, termination, truncation at the registered
``max_episode_steps`` and reset distributions. ``TORCH_ENVS`` maps the gymnasium ids to the classes.
``tests/test_classic_envs.py`` checks them step by step against gymnasium.

Conventions:

- The ``envs.core.VecEnv`` contract with its "same step" auto-reset: where copy ``i`` ends an
  episode, ``obs[i]`` is the first observation of its next episode and ``info["final_obs"][i]``
  the last one of the finished episode (``final_obs`` equals ``obs`` elsewhere). ``terminated``
  and ``truncated`` stay separate; truncation comes only from the time limit, and a step that
  does both reports both, like gymnasium's TimeLimit.
- ``step`` is pure tensor math on ``device``: no host sync, no Python branch on tensor values,
  no loop over copies, so a CUDA run never waits for the GPU.
- Precision: the physical state is kept in ``dtype``. float32 (default) is what training wants;
  float64 follows gymnasium's own float64 arithmetic so tests can compare whole trajectories.
  Observations are returned in ``dtype`` (float32 unless float64 was asked for); rewards are
  float32. Pendulum's torque terms are float32 in gymnasium (a float32 action times a Python
  float stays float32 under NumPy 2) and are float32 here too; MountainCarContinuous keeps a
  float32 state in gymnasium, so only float32-level agreement is possible there.
- Randomness: one ``torch.Generator`` on ``device`` draws every reset state. The distributions
  are gymnasium's; the numbers are not (gymnasium draws from numpy, one generator per copy).
  Each step draws a fresh initial state for every copy and keeps those of the copies that
  finished, so the random stream does not depend on which copies finished and needs no sync.
- Actions: a tensor on any device, ``[N]`` (Discrete, any integer dtype) or ``[N, 1]`` / ``[N]``
  (Box). Discrete values are not checked, which would cost a host sync: out-of-range values give
  meaningless dynamics or an indexing error (a device-side assert on CUDA). Box actions are
  taken as float32 (their space's dtype) and clipped as gymnasium clips them.
- Not supported: ``render_mode`` (use ``backend="gymnasium"`` to render), reset ``options``,
  Acrobot's class-level switches ``book_or_nips="nips"`` and ``torque_noise_max``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from envs.core import VecEnv

__all__ = [
    "TORCH_ENVS",
    "AcrobotVecEnv",
    "CartPoleVecEnv",
    "MountainCarContinuousVecEnv",
    "MountainCarVecEnv",
    "PendulumVecEnv",
    "TorchVecEnv",
]

_DTYPES = (torch.float32, torch.float64)


def _select_rows(done: torch.Tensor, fresh: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """``torch.where(done[:, None], fresh, state)`` for ``[N, D]`` tensors, bit for bit.

    On the CPU a ``[N, 1]`` condition makes ``where`` run a D-element inner loop per row, several
    times slower than a 1-D ``where``; viewing each row as whole 8- or 16-byte elements makes it (nearly)
    1-D. Only bit patterns are selected, no arithmetic happens, so the result is exact.
    """
    row_bytes = state.shape[1] * state.element_size()
    if row_bytes % 16 == 0:
        view = torch.complex128
    elif row_bytes % 8 == 0:
        view = torch.int64
    else:
        return torch.where(done[:, None], fresh, state)
    return torch.where(done[:, None], fresh.view(view), state.view(view)).view(state.dtype)


class TorchVecEnv(VecEnv):
    """``num_envs`` copies of one classic-control environment as ``[N, state_dim]`` tensors on ``device``.

    Subclasses give the spaces, ``_initial_states`` (reset distribution), ``_dynamics`` (one step
    of every copy) and, when the observation is not the state itself, ``_observe``.

    Args:
        num_envs: number of copies stepped together (>= 1).
        device: where the state and every returned tensor live.
        seed: seeds the reset generator (the first ``reset`` uses it); None draws a random seed.
        max_episode_steps: time limit (truncation); None uses the gymnasium registration's.
        dtype: float32 or float64, the precision of the physical state and observations.
        render_mode: not supported; anything but None raises ValueError.
    """

    env_id: str
    default_max_episode_steps: int
    state_dim: int

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ):
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r}: the torch-native {self.env_id} does not render; "
                'use backend="gymnasium" for rendering'
            )
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        if max_episode_steps is None:
            max_episode_steps = self.default_max_episode_steps
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be an integer >= 1 or None, got {max_episode_steps!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_episode_steps = max_episode_steps
        self._generator = torch.Generator(device=self.device)
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)
        self._state: torch.Tensor | None = None
        self.resumed_mid_episode = False  # set by load_state_dict
        # int64 like the Python ints it meets (+ 1, >= limit), so no scalar cast per step.
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    # -- what a subclass defines ------------------------------------------------------------

    def _initial_states(self) -> torch.Tensor:
        """``[N, state_dim]`` fresh episode starts in ``dtype``, drawn with ``self._generator``."""
        raise NotImplementedError  # abstract

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of every copy: ``(next_state, reward float32 [N], terminated bool [N])``.

        Must build new tensors, never write into ``state``: returned observations may share it.
        """
        raise NotImplementedError  # abstract

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state  # CartPole and the mountain cars observe their state as it is

    def _uniform(self, low: float, high: float, shape: tuple[int, ...]) -> torch.Tensor:
        out = torch.empty(shape, device=self.device, dtype=self.dtype)
        return out.uniform_(low, high, generator=self._generator)

    # -- the VecEnv contract -------------------------------------------------------------------

    def _public_obs(self) -> torch.Tensor:
        obs = self._observe(self._state)
        # The caller may write into what it gets; the next step must not see that.
        return obs.clone() if obs is self._state else obs

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Start a new episode in every copy; ``seed`` reseeds the reset generator first."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be an integer or None, got {seed!r}")
            self._generator.manual_seed(seed)
        self._state = self._initial_states()
        self._elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        return self._public_obs(), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every copy; finished copies restart at once (``info["final_obs"]`` keeps their last obs)."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        # detach: an action that carries autograd history would otherwise chain every step's state into one graph
        next_state, reward, terminated = self._dynamics(self._state, action.detach().to(self.device))
        elapsed = self._elapsed + 1
        truncated = elapsed >= self.max_episode_steps
        done = terminated | truncated
        self._state = _select_rows(done, self._initial_states(), next_state)
        self._elapsed = elapsed.masked_fill_(done, 0)
        info = {"final_obs": self._observe(next_state)}
        return self._public_obs(), reward, terminated, truncated, info

    # -- checkpoints and tests --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Physical state, episode clocks and the reset generator: a resumed run continues exactly."""
        return {
            "env_id": self.env_id,
            "state": None if self._state is None else self._state.clone(),
            "elapsed": self._elapsed.clone(),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved episodes (``resumed_mid_episode`` says whether there were any). A state
        saved by another backend (a gymnasium run evaluated here) is ignored: episodes start afresh."""
        self.resumed_mid_episode = False
        if "generator" not in state:
            return
        if state.get("env_id") != self.env_id:
            raise ValueError(f"state_dict is for {state.get('env_id')!r}, not {self.env_id!r}")
        if state["state"] is None:
            self._state = None
        else:
            self.set_state(state["state"], state["elapsed"])
            self.resumed_mid_episode = True
        self._generator.set_state(state["generator"])

    def get_state(self) -> torch.Tensor:
        """A copy of the physical state, ``[N, state_dim]`` in ``dtype`` (see each class for the layout)."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}.get_state() called before reset()")
        return self._state.clone()

    def set_state(self, state: torch.Tensor, elapsed: int | torch.Tensor | None = None) -> torch.Tensor:
        """Overwrite the physical state (and, if given, the steps elapsed in each episode); returns the obs.

        ``elapsed=None`` keeps each copy's episode clock (0 before the first reset).
        """
        state = torch.as_tensor(state).to(device=self.device, dtype=self.dtype)
        if tuple(state.shape) != (self.num_envs, self.state_dim):
            raise ValueError(f"state must have shape {(self.num_envs, self.state_dim)}, got {tuple(state.shape)}")
        self._state = state.clone(memory_format=torch.contiguous_format)  # _select_rows views rows as wider dtypes
        if elapsed is not None:
            elapsed = torch.as_tensor(elapsed, device=self.device).to(torch.int64)
            self._elapsed = elapsed.expand(self.num_envs).clone()
        return self._public_obs()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, device={self.device})"


class CartPoleVecEnv(TorchVecEnv):
    """CartPole-v1: state ``[x, x_dot, theta, theta_dot]``, observation the same, Discrete(2).

    ``sutton_barto_reward=True`` gives 0 per step and -1 on the terminating step, as in gymnasium.
    """

    env_id = "CartPole-v1"
    default_max_episode_steps = 500
    state_dim = 4

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
        sutton_barto_reward: bool = False,
    ):
        super().__init__(num_envs, device, seed, max_episode_steps, dtype, render_mode)
        self.sutton_barto_reward = sutton_barto_reward
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], dtype=np.float32)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(2)
        # Constants as tensors of the state's dtype: a Python float operand costs a cast per op.
        def const(value: float | list[float]) -> torch.Tensor:
            return torch.tensor(value, dtype=dtype, device=self.device)

        # gymnasium divides (force + ...) by the total mass; dividing each term first saves ops.
        self._force_over_mass = const([-self.force_mag / self.total_mass, self.force_mag / self.total_mass])
        self._gravity = const(self.gravity)
        self._four_thirds_length = const(self.length * 4.0 / 3.0)
        self._thresholds = const([self.x_threshold, self.theta_threshold_radians])  # |x|, |theta| (state columns 0, 2)
        # Scratch for the time derivative, so the Euler step is one add of [N, 4] tensors.
        self._deriv = torch.empty(num_envs, 4, dtype=dtype, device=self.device)

    def _initial_states(self) -> torch.Tensor:
        return self._uniform(-0.05, 0.05, (self.num_envs, 4))

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # The op count matters here (see tests/benchmarks/bench_env_throughput.py): fused multiply-adds
        # and one scratch buffer instead of gymnasium's term-by-term expressions.
        theta, theta_dot = state[:, 2], state[:, 3]
        cos, sin = theta.cos(), theta.sin()
        pml_over_mass = self.polemass_length / self.total_mass
        force = self._force_over_mass.index_select(0, action.reshape(-1).long())  # +-force_mag / total_mass
        temp = torch.addcmul(force, theta_dot.square(), sin, value=pml_over_mass)
        deriv = self._deriv
        deriv[:, 0::2] = state[:, 1::2]  # d/dt of x and theta
        # thetaacc = (g sin - cos temp) / (l (4/3 - m_pole cos^2 / m_total)), written straight into the scratch
        numerator = torch.mul(sin, self._gravity).addcmul_(cos, temp, value=-1.0)
        denominator = torch.addcmul(self._four_thirds_length, cos, cos, value=-self.length * self.masspole / self.total_mass)
        thetaacc = torch.div(numerator, denominator, out=deriv[:, 3])
        torch.addcmul(temp, thetaacc, cos, value=-pml_over_mass, out=deriv[:, 1])  # xacc
        next_state = torch.add(state, deriv, alpha=self.tau)  # gymnasium's default "euler" integrator
        terminated = (next_state[:, 0::2].abs() > self._thresholds).any(1)
        if self.sutton_barto_reward:
            reward = terminated.float().neg_()
        else:
            reward = torch.ones(self.num_envs, device=self.device)  # the terminating step included
        return next_state, reward, terminated


class AcrobotVecEnv(TorchVecEnv):
    """Acrobot-v1: state ``[theta1, theta2, dtheta1, dtheta2]``, observation
    ``[cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2]``, Discrete(3) (torque -1, 0, +1).
    """

    env_id = "Acrobot-v1"
    default_max_episode_steps = 500
    state_dim = 4

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi
    g = 9.8

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ):
        super().__init__(num_envs, device, seed, max_episode_steps, dtype, render_mode)
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        self.single_observation_space = spaces.Box(low=-high, high=high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(3)
        m1, m2, l1 = self.LINK_MASS_1, self.LINK_MASS_2, self.LINK_LENGTH_1
        lc1, lc2, i1, i2 = self.LINK_COM_POS_1, self.LINK_COM_POS_2, self.LINK_MOI, self.LINK_MOI
        # gymnasium's _dsdt ("book" equations) with its constant products folded.
        self._d1_const = m1 * lc1**2 + m2 * (l1**2 + lc2**2) + i1 + i2
        self._d1_cos = m2 * 2 * l1 * lc2
        self._d2_const = m2 * lc2**2 + i2
        self._d2_cos = m2 * l1 * lc2
        self._phi2_coef = m2 * lc2 * self.g
        self._phi1_coef = (m1 * lc1 + m2 * l1) * self.g
        self._m2_l1_lc2 = m2 * l1 * lc2
        self._torques = torch.tensor([-1.0, 0.0, 1.0], dtype=dtype, device=self.device)
        self._max_vel = torch.tensor([self.MAX_VEL_1, self.MAX_VEL_2], dtype=dtype, device=self.device)

    def _initial_states(self) -> torch.Tensor:
        # gymnasium draws float64 and stores float32.
        return self._uniform(-0.1, 0.1, (self.num_envs, 4)).float().to(self.dtype)

    def _dsdt(self, s: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        theta1, theta2, dtheta1, dtheta2 = s.unbind(1)
        cos2, sin2 = theta2.cos(), theta2.sin()
        d1 = cos2 * self._d1_cos + self._d1_const
        d2 = cos2 * self._d2_cos + self._d2_const
        phi2 = (theta1 + theta2 - math.pi / 2.0).cos() * self._phi2_coef
        phi1 = (
            -self._m2_l1_lc2 * dtheta2.square() * sin2
            - 2 * self._m2_l1_lc2 * dtheta2 * dtheta1 * sin2
            + (theta1 - math.pi / 2).cos() * self._phi1_coef
            + phi2
        )
        d2_over_d1 = d2 / d1
        ddtheta2 = (torque + d2_over_d1 * phi1 - self._m2_l1_lc2 * dtheta1.square() * sin2 - phi2) / (
            self._d2_const - d2 * d2_over_d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), 1)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        cos, sin = state[:, :2].cos(), state[:, :2].sin()
        return torch.stack((cos[:, 0], sin[:, 0], cos[:, 1], sin[:, 1], state[:, 2], state[:, 3]), 1)

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        torque = self._torques.index_select(0, action.reshape(-1).long())
        # gymnasium's rk4 over t = [0, dt]: one classic Runge-Kutta step.
        dt = self.dt
        k1 = self._dsdt(state, torque)
        k2 = self._dsdt(state + dt / 2.0 * k1, torque)
        k3 = self._dsdt(state + dt / 2.0 * k2, torque)
        k4 = self._dsdt(state + dt * k3, torque)
        ns = state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        # gymnasium's wrap() subtracts (adds) 2 pi while above pi (below -pi). One turn is the common
        # case and comes out bit for bit; from extreme velocities a step can add several.
        angles = ns[:, :2]
        turn = 2 * math.pi
        angles = angles - turn * ((angles - math.pi) / turn).ceil_().clamp_(min=0)
        angles = angles + turn * ((-math.pi - angles) / turn).ceil_().clamp_(min=0)
        velocities = torch.clamp(ns[:, 2:], -self._max_vel, self._max_vel)
        next_state = torch.cat((angles, velocities), 1)
        cos0 = next_state[:, 0].cos()
        terminated = -cos0 - (next_state[:, 1] + next_state[:, 0]).cos() > 1.0
        reward = terminated.float() - 1.0  # -1 per step, 0 on reaching the goal
        return next_state, reward, terminated


class MountainCarVecEnv(TorchVecEnv):
    """MountainCar-v0: state and observation ``[position, velocity]``, Discrete(3) (push left, none, right)."""

    env_id = "MountainCar-v0"
    default_max_episode_steps = 200
    state_dim = 2

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    force = 0.001
    gravity = 0.0025

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
        goal_velocity: float = 0,
    ):
        super().__init__(num_envs, device, seed, max_episode_steps, dtype, render_mode)
        self.goal_velocity = goal_velocity
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(3)
        self._push = torch.tensor([-self.force, 0.0, self.force], dtype=dtype, device=self.device)

    def _initial_states(self) -> torch.Tensor:
        state = torch.zeros(self.num_envs, 2, dtype=self.dtype, device=self.device)
        state[:, 0] = self._uniform(-0.6, -0.4, (self.num_envs,))
        return state

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity = state[:, 0], state[:, 1]
        push = self._push.index_select(0, action.reshape(-1).long())  # (action - 1) * force
        velocity = velocity + (push + (3 * position).cos() * -self.gravity)
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        velocity = velocity.masked_fill((position == self.min_position) & (velocity < 0), 0.0)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        reward = torch.full((self.num_envs,), -1.0, device=self.device)
        return torch.stack((position, velocity), 1), reward, terminated


class MountainCarContinuousVecEnv(MountainCarVecEnv):
    """MountainCarContinuous-v0: state and observation ``[position, velocity]``, action Box(-1, 1, (1,)).

    The force is the action clipped to [-1, 1]; the reward's action cost uses the unclipped
    action, as gymnasium's ``reward -= math.pow(action[0], 2) * 0.1`` does. gymnasium keeps this
    env's state in float32 (and mixes in float64 terms), so even in float64 mode trajectories
    agree with gymnasium's only to float32 rounding, not to float64's.
    """

    env_id = "MountainCarContinuous-v0"
    default_max_episode_steps = 999
    state_dim = 2

    min_action = -1.0
    max_action = 1.0
    goal_position = 0.45
    power = 0.0015

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
        goal_velocity: float = 0,
    ):
        # MountainCar-v0's observation space, reset distribution and goal test; only the action differs.
        super().__init__(num_envs, device, seed, max_episode_steps, dtype, render_mode, goal_velocity)
        self.single_action_space = spaces.Box(low=self.min_action, high=self.max_action, shape=(1,), dtype=np.float32)

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity = state[:, 0], state[:, 1]
        action = action.reshape(-1).to(torch.float32)
        force = action.clamp(self.min_action, self.max_action).to(self.dtype)
        velocity = velocity + (force * self.power - (3 * position).cos() * 0.0025)
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        velocity = velocity.masked_fill((position == self.min_position) & (velocity < 0), 0.0)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        # float64, then rounded once: gymnasium's reward is a Python float.
        reward = (terminated.double() * 100.0 - action.double().square() * 0.1).float()
        next_state = torch.stack((position, velocity), 1)
        return next_state, reward, terminated


class PendulumVecEnv(TorchVecEnv):
    """Pendulum-v1: state ``[theta, theta_dot]`` (theta not wrapped, as in gymnasium), observation
    ``[cos theta, sin theta, theta_dot]``, action Box(-2, 2, (1,)). Never terminates; truncates at 200.
    """

    env_id = "Pendulum-v1"
    default_max_episode_steps = 200
    state_dim = 2

    max_speed = 8
    max_torque = 2.0
    dt = 0.05
    m = 1.0
    l = 1.0  # noqa: E741  (gymnasium's name)

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
        g: float = 10.0,
    ):
        super().__init__(num_envs, device, seed, max_episode_steps, dtype, render_mode)
        self.g = g
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.single_observation_space = spaces.Box(low=-high, high=high, dtype=np.float32)
        self.single_action_space = spaces.Box(low=-self.max_torque, high=self.max_torque, shape=(1,), dtype=np.float32)
        self._high = torch.tensor([math.pi, 1.0], dtype=dtype, device=self.device)

    def _initial_states(self) -> torch.Tensor:
        # theta ~ U(-pi, pi), theta_dot ~ U(-1, 1)
        return self._uniform(-1.0, 1.0, (self.num_envs, 2)).mul_(self._high)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        theta = state[:, 0]
        return torch.stack((theta.cos(), theta.sin(), state[:, 1]), 1)

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        th, thdot = state[:, 0], state[:, 1]
        # The action is float32 and NumPy 2 keeps float32 * Python float in float32: so does this.
        u = action.reshape(-1).to(torch.float32).clamp(-self.max_torque, self.max_torque)
        # The cost in float64 (gymnasium's precision) from this state, rounded once to a float32 reward.
        th64 = th.double()
        angle = torch.remainder(th64 + math.pi, 2 * math.pi) - math.pi
        costs = angle.square() + 0.1 * thdot.double().square() + (0.001 * u.square()).double()
        accel = th.sin() * (3 * self.g / (2 * self.l)) + (3.0 / (self.m * self.l**2) * u).to(self.dtype)
        newthdot = (thdot + accel * self.dt).clamp(-self.max_speed, self.max_speed)
        newth = th + newthdot * self.dt
        reward = costs.neg_().float()
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return torch.stack((newth, newthdot), 1), reward, terminated


TORCH_ENVS: dict[str, type[TorchVecEnv]] = {
    cls.env_id: cls
    for cls in (CartPoleVecEnv, AcrobotVecEnv, MountainCarVecEnv, MountainCarContinuousVecEnv, PendulumVecEnv)
}
