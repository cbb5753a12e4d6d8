"""KL penalties for fine-tuning a policy against a frozen reference (RLHF).

Per-token estimators follow Schulman (2020), "Approximating KL Divergence"; the adaptive
coefficient follows Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlcore.config import check

KL_ESTIMATORS = ("k1", "k2", "k3")


@dataclass
class KLConfig:
    """The KL penalty against the frozen reference model (fine-tuning a language model). Its flat
    names, and the CLI's flags, are `kl_<field>`: `--kl-coef`, `--kl-target`, ..."""

    coef: float = 0.05
    """Weight of the KL penalty against the frozen reference model (the initial one when kl_target is set)."""
    target: float | None = None
    """Adaptive KL coefficient (Ziegler et al. 2019) steering the per-episode KL to this; None keeps kl_coef."""
    horizon: int = 10_000
    """Episodes over which the adaptive controller moves the coefficient."""
    estimator: str = "k1"
    """Per-token KL estimator: k1 (log ratio, unbiased), k2 or k3 (non-negative; the loss needs k2 or k3)."""
    penalty: str = "reward"
    """reward: subtract kl_coef * KL from each token's reward (PPO-RLHF); loss: add kl_coef * KL to the loss (GRPO)."""

    def __post_init__(self) -> None:
        check(self, "coef", self.coef >= 0, ">= 0")  # `>=` is False for NaN too
        check(self, "target", self.target is None or self.target > 0, "> 0 or None")
        check(self, "horizon", self.horizon >= 1, ">= 1")
        check(self, "estimator", self.estimator in KL_ESTIMATORS, f"one of {', '.join(KL_ESTIMATORS)}")
        check(self, "penalty", self.penalty in ("reward", "loss"), "reward or loss")
        check(self, "estimator", self.penalty == "reward" or self.estimator != "k1",
              "k2 or k3 with kl_penalty=loss (k1's gradient is zero in expectation)")

    @property
    def skips_reference(self) -> bool:
        """A fixed coefficient of 0: no reference pass is needed (and no KL is measured)."""
        return self.coef == 0 and self.target is None


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference), elementwise, for tokens sampled from the policy.

    `logprobs` and `ref_logprobs` are the log-probabilities of the sampled tokens under the policy and the
    reference. With log r = ref_logprobs - logprobs:

    - "k1" = -log r: unbiased, but single samples can be negative and its variance is high.
    - "k2" = (log r)^2 / 2: non-negative and low-variance, but biased (exact only as the policies coincide).
    - "k3" = (r - 1) - log r: unbiased and non-negative, with lower variance than k1.
    """
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and ref_logprobs {tuple(ref_logprobs.shape)} must have one "
                         "shape: pass the log-probabilities of the same sampled tokens under both models")
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    if estimator == "k3":
        # expm1 keeps r - 1 exact when the policies are close, where exp(x) - 1 would cancel to 0.
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}: choose one of {', '.join(KL_ESTIMATORS)}")


class FixedKLController:
    """A constant KL coefficient; `update` is a no-op so agents can call it regardless of the controller."""

    def __init__(self, coef: float) -> None:
        _check_coef(coef, "coef")
        self.coef = float(coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt: the coefficient stays as configured."""

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_coef(state["coef"], "coef")
        self.coef = float(state["coef"])


class AdaptiveKLController:
    """Proportional control of the KL coefficient towards a target KL (Ziegler et al. 2019, section 2.2).

    error = clip(current_kl / target - 1, -0.2, 0.2); coef *= 1 + error * n_steps / horizon.
    The clip bounds how fast the coefficient moves when the KL is far from the target.
    """

    def __init__(self, init_coef: float, target: float, horizon: int) -> None:
        _check_coef(init_coef, "init_coef")
        if not target > 0:
            raise ValueError(f"target must be > 0 (the KL the controller steers towards), got {target}")
        if not horizon > 0:
            raise ValueError(f"horizon must be > 0 (steps over which the coefficient adapts), got {horizon}")
        self.coef = float(init_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Adapt after `n_steps` environment steps (tokens or sequences, as `horizon` counts) at KL `current_kl`."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.coef *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(state["coef"], state["target"], state["horizon"])  # re-validates a hand-edited checkpoint


KLController = FixedKLController | AdaptiveKLController


def make_kl_controller(config: KLConfig) -> KLController:
    """An adaptive controller starting at `config.coef` when a target KL is given, else a fixed coefficient."""
    if config.target is None:
        return FixedKLController(config.coef)
    return AdaptiveKLController(config.coef, config.target, config.horizon)


def _check_coef(coef: float, name: str) -> None:
    if not coef >= 0:  # `not >=` also rejects NaN
        raise ValueError(f"{name} must be >= 0 (the weight of the KL penalty), got {coef}")
