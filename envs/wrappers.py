"""Torch-side VecEnv wrappers. Each ``step`` is pure tensor math on the device: no host sync."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from envs.core import VecEnv, VecEnvWrapper
from rlcore.running_stats import RunningMeanStd


class EpisodeStatistics(VecEnvWrapper):
    """Tracks episode returns and lengths of the rewards it sees.

    ``step`` adds to ``info``: ``episode_done`` (bool ``[N]``, terminated | truncated),
    ``episode_return`` and ``episode_length`` (float32 ``[N]``, the finished episode's
    values where ``episode_done``, 0 elsewhere). It also accumulates finished episodes on
    the device so a trainer can log every few thousand steps with a single sync:
    see ``pop_finished`` and ``recent_mean_return``.

    Place it inside any wrapper that changes rewards (ClipReward) so it reports the score.
    """

    window = 100  # recent_mean_return averages the last `window` finished episodes

    def __init__(self, env: VecEnv):
        super().__init__(env)
        n, dev = self.num_envs, self.device
        # float64: a long episode of small rewards summed in float32 loses digits.
        self._return = torch.zeros(n, dtype=torch.float64, device=dev)
        self._length = torch.zeros(n, dtype=torch.int64, device=dev)
        # Finished-episode sums per copy, so pop_finished can report per group of copies (per seed).
        self._return_sum = torch.zeros(n, dtype=torch.float64, device=dev)
        self._length_sum = torch.zeros(n, dtype=torch.float64, device=dev)
        self._count = torch.zeros(n, dtype=torch.int64, device=dev)
        self._total = torch.zeros((), dtype=torch.int64, device=dev)
        # One extra slot at the end absorbs the writes of envs that did not finish, so the
        # ring update is a single unconditional scatter.
        self._ring = torch.zeros(self.window + 1, dtype=torch.float64, device=dev)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed)
        self._return.zero_()
        self._length.zero_()
        return obs, info

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += reward
        self._length += info["active"] if "active" in info else 1  # a text round's idle copies wait, not act
        done = terminated | truncated
        info["episode_done"] = done
        # On the CPU reading `done` costs nothing, and most steps end no episode: skip the
        # bookkeeping below then. On an accelerator the branch would be a sync, so always run it.
        if self.device.type == "cpu" and not bool(done.any()):
            info["episode_return"] = info["episode_length"] = torch.zeros(self.num_envs)
            return obs, reward, terminated, truncated, info
        ep_return = torch.where(done, self._return, 0.0)
        ep_length = torch.where(done, self._length, 0)
        n_done = done.sum()
        self._return_sum += ep_return
        self._length_sum += ep_length
        self._count += done
        # Finished episodes take consecutive ring slots in env order; when more than
        # `window` finish at once only the last `window` are kept, so no slot is written twice.
        rank = done.cumsum(0)
        keep = done & (rank > n_done - self.window)
        slot = torch.where(keep, (self._total + rank - 1) % self.window, self.window)
        self._ring.scatter_(0, slot, ep_return)
        self._total += n_done
        self._return.masked_fill_(done, 0.0)
        self._length.masked_fill_(done, 0)
        info["episode_return"] = ep_return.float()
        info["episode_length"] = ep_length.float()
        return obs, reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        names = ("_return", "_length", "_return_sum", "_length_sum", "_count", "_total", "_ring")
        return {"stats": {k: getattr(self, k).clone() for k in names}, "env": self.env.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.get("stats", {}).items():
            target = getattr(self, k)
            if v.dim() < target.dim():  # a checkpoint from before per-copy sums: keep its totals in copy 0
                target.zero_()
                target[0] = v
            else:
                target.copy_(v)
        self.env.load_state_dict(state.get("env", {}))

    def pop_finished(self, groups: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sum of returns, sum of lengths, count) of episodes finished since the last pop.

        0-d device tensors (float64, float64, int64), or ``[groups]`` tensors summed over that many
        consecutive equal groups of copies (one per seed when several train at once). No sync.
        """
        sums = (self._return_sum, self._length_sum, self._count)
        out = tuple(x.sum() if groups is None else x.view(groups, -1).sum(1) for x in sums)
        self._return_sum = torch.zeros_like(self._return_sum)
        self._length_sum = torch.zeros_like(self._length_sum)
        self._count = torch.zeros_like(self._count)
        return out

    def recent_mean_return(self) -> float | None:
        """Mean return of the last ``window`` finished episodes, None before the first. Syncs."""
        filled = min(int(self._total), self.window)
        if filled == 0:
            return None
        return float(self._ring[:filled].mean())


class ObservationNormalization(VecEnvWrapper):
    """Normalises observations by a running mean/variance and clips them to ``[-clip, clip]``.

    The statistics update from every observation returned by ``reset`` and ``step`` while
    ``training`` is True; set it False to freeze them (evaluation). ``info["final_obs"]`` is
    normalised with the same statistics so bootstrapping sees what the policy sees.
    """

    def __init__(self, env: VecEnv, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__(env)
        space = env.single_observation_space
        if not isinstance(space, spaces.Box):
            raise ValueError(f"ObservationNormalization needs a Box observation space, got {space}")
        self.clip = clip
        self.epsilon = epsilon
        self.training = True
        self.obs_rms = RunningMeanStd(space.shape, device=self.device)
        self.single_observation_space = spaces.Box(-clip, clip, space.shape, np.float32)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        scaled = (obs - self.obs_rms.mean) / torch.sqrt(self.obs_rms.var + self.epsilon)
        return scaled.clamp(-self.clip, self.clip).float()

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed)
        if self.training:
            self.obs_rms.update(obs)
        return self.normalize(obs), info

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.training:
            self.obs_rms.update(obs)
        info["final_obs"] = self.normalize(info["final_obs"])
        return self.normalize(obs), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        return {"obs_rms": self.obs_rms.state_dict(), "env": self.env.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.env.load_state_dict(state.get("env", {}))


class ClipReward(VecEnvWrapper):
    """Replaces each reward by its sign (Mnih et al. 2015), so one learning rate fits every game."""

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward.sign(), terminated, truncated, info


class RewardNormalization(VecEnvWrapper):
    """Scales rewards by the running std of the discounted return, as SB3's VecNormalize and
    gymnasium's NormalizeReward do: one ``gamma`` and learning rate then fit rewards of any scale.

    Per env a discounted return ``R <- gamma * R + r`` accumulates; its running variance
    (over all envs and steps) scales the reward, ``r / sqrt(var + epsilon)``, clipped to
    ``[-clip, clip]``. The reward is scaled, not centred: subtracting a mean would change
    which behaviour is optimal (e.g. reward or punish merely staying alive). ``R`` restarts
    after a terminated or truncated step, with the episode's last reward included, as in SB3.

    While ``training`` is True the statistics update from every step; set it False to freeze
    them (evaluation). ``R`` keeps accumulating either way, so it stays correct for the
    episodes in flight when training resumes. ``state_dict`` carries the statistics and ``R``.

    Place it outside EpisodeStatistics (``envs.make`` puts EpisodeStatistics on the adapter),
    so the returns reported in logs are the raw game score, not the scaled rewards.
    """

    def __init__(self, env: VecEnv, gamma: float = 0.99, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__(env)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"RewardNormalization.gamma = {gamma!r} is invalid: must be in (0, 1].")
        if not clip > 0.0:
            raise ValueError(f"RewardNormalization.clip = {clip!r} is invalid: must be > 0.")
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon
        self.training = True
        self.return_rms = RunningMeanStd((), device=self.device)
        # float64 like the statistics it feeds: a long episode of small rewards loses digits in float32.
        self._return = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)

    def normalize(self, reward: torch.Tensor) -> torch.Tensor:
        scaled = reward / torch.sqrt(self.return_rms.var + self.epsilon)
        return scaled.clamp(-self.clip, self.clip).float()

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed)
        self._return.zero_()
        return obs, info

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return.mul_(self.gamma).add_(reward)
        if self.training:
            self.return_rms.update(self._return)
        scaled = self.normalize(reward)
        self._return.masked_fill_(terminated | truncated, 0.0)
        return obs, scaled, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        return {"return_rms": self.return_rms.state_dict(), "returns": self._return.clone(),
                "env": self.env.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.return_rms.load_state_dict(state["return_rms"])
        self._return.copy_(state["returns"])
        self.env.load_state_dict(state.get("env", {}))
