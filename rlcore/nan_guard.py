"""The first NaN or inf of a run (in a loss, an observation or a reward), recorded without a host
sync and reported as an error that names the step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class NanGuard:
    """Remembers, on the device, the first step whose loss, observation or reward was not finite
    (and for inputs, which environment copy), so the hot loop never syncs; `check`, called at log
    and checkpoint time, turns it into an error naming the step."""

    def __init__(self, device: torch.device):
        # [loss step, input step, input env], -1 where nothing went wrong yet.
        self.first = torch.full((3,), -1, dtype=torch.long, device=device)

    def record(self, loss: torch.Tensor, step: int) -> None:
        finite = torch.isfinite(loss.detach())
        if finite.device.type == "cpu" and bool(finite.all()):
            return  # on the CPU reading the flag is free; on an accelerator stay branch-free (no sync)
        bad = ~finite & (self.first[0] < 0)
        self.first[0] = torch.where(bad, step, self.first[0])

    def record_env(self, obs: torch.Tensor, reward: torch.Tensor, step: int) -> None:
        # A NaN or inf anywhere in a copy's observation or reward makes this per-copy sum non-finite.
        total = reward + obs.flatten(1).sum(1) if obs.is_floating_point() else reward
        finite = torch.isfinite(total)
        if finite.device.type == "cpu" and bool(finite.all()):
            return  # as in `record`
        bad_env = ~finite
        self._keep_first_input(bad_env.any(), step, bad_env.int().argmax())

    def record_rollout(self, obs: torch.Tensor, rewards: torch.Tensor, start_step: int, step_size: int,
                       final_values: torch.Tensor | None = None) -> None:
        """`record_env` for a whole rollout at once (a few ops instead of a few per step): `obs[t]`
        ``[T, N, ...]`` came back at environment step ``start_step + t * step_size``, `rewards[t]` at
        ``start_step + (t + 1) * step_size``, and so did the final observation of an episode that step
        ended, whose value `final_values[t]` is not finite where the observation was not. The earliest
        bad step is kept, then the lowest copy."""
        T, N = rewards.shape
        bad = torch.zeros(T + 1, N, dtype=torch.bool, device=rewards.device)
        if obs.is_floating_point():
            bad[:T] = ~torch.isfinite(obs.reshape(T, N, -1).sum(2))
        bad[1:] |= ~torch.isfinite(rewards)
        if final_values is not None:
            bad[1:] |= ~torch.isfinite(final_values)
        bad = bad.flatten()
        if bad.device.type == "cpu" and not bool(bad.any()):
            return  # as in `record`
        first = bad.int().argmax()  # row-major: the earliest step, then the lowest copy
        self._keep_first_input(bad.any(), start_step + first.div(N, rounding_mode="floor") * step_size, first % N)

    def _keep_first_input(self, any_bad: torch.Tensor, step: int | torch.Tensor, env: torch.Tensor) -> None:
        new = any_bad & (self.first[1] < 0)  # only the first bad input is kept
        self.first[1] = torch.where(new, step, self.first[1])
        self.first[2] = torch.where(new, env, self.first[2])

    def check(self, algo: str, checkpoint: Path) -> None:
        """Raise the error for the first non-finite value recorded, naming `checkpoint`, the last good
        one, when it exists."""
        loss_step, input_step, env = self.first.tolist()
        if input_step < 0 and loss_step < 0:
            return
        kept = (f"the last good checkpoint is {checkpoint} (not overwritten)" if Path(checkpoint).exists()
                else "no checkpoint had been saved yet")
        if input_step >= 0:
            raise FloatingPointError(
                f"The environment returned a NaN/inf observation or reward at environment step {input_step} "
                f"(copy {env}). Training stopped; {kept}. Check the environment, or wrap it to sanitise its output.")
        raise FloatingPointError(
            f"{algo.upper()} loss became NaN/inf at environment step {loss_step}. Training stopped; {kept}. Lower "
            "learning_rate, check rewards and observations for NaN, or set normalize_obs=True.")

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first.copy_(state["first"])
