"""rlcore.distributions against torch.distributions references, the action heads and bounds,
and envs.wrappers.RewardNormalization against returns computed by hand."""

from __future__ import annotations

import io
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import distributions as D

from envs.core import VecEnv
from envs.wrappers import EpisodeStatistics, RewardNormalization
from rlcore.distributions import (
    Categorical,
    CategoricalHead,
    DiagGaussian,
    DiagGaussianHead,
    MultiCategorical,
    MultiCategoricalHead,
    TanhDiagGaussian,
    clip_action,
    make_action_head,
    scale_action,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------------- categorical


def test_categorical_matches_torch_reference() -> None:
    logits = torch.randn(5, 4) * 3
    actions = torch.randint(0, 4, (5,))
    ours, ref = Categorical(logits), D.Categorical(logits=logits)
    torch.testing.assert_close(ours.log_prob(actions), ref.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    assert torch.equal(ours.mode(), logits.argmax(-1))
    assert ours.log_prob(actions).shape == ours.entropy().shape == (5,)


@pytest.mark.parametrize("k", [3, 40])  # a few actions: compare with every entry; a vocabulary: binary search
def test_categorical_samples_follow_probs_for_any_batch_shape(k: int) -> None:
    probs = torch.zeros(k)
    probs[:3] = torch.tensor([0.1, 0.6, 0.3])
    samples = Categorical(probs.log().roll(k - 3).expand(20000, k)).sample()  # zero-probability actions first
    assert samples.shape == (20000,) and samples.dtype == torch.int64
    torch.testing.assert_close(torch.bincount(samples, minlength=k) / 20000.0, probs.roll(k - 3), atol=0.02, rtol=0)
    # Time-major [T, N, K] logits give [T, N] actions; both ways pick the same action for the same draw.
    assert Categorical(torch.randn(4, 3, k)).sample().shape == (4, 3)
    logits = torch.randn(6, 5, k)
    cdf = logits.log_softmax(-1).exp().cumsum(-1)
    torch.manual_seed(1)
    u = torch.rand(6, 5, 1) * cdf[..., -1:]
    torch.manual_seed(1)
    assert torch.equal(Categorical(logits).sample(), (cdf < u).sum(-1))


def test_categorical_half_precision_and_masked_actions() -> None:
    logits = torch.randn(2, 50)
    bf16 = Categorical(logits.bfloat16())
    assert bf16.logits.dtype == torch.float32  # normalised in float32, not in bf16
    torch.testing.assert_close(bf16.logits, logits.bfloat16().float().log_softmax(-1))
    # A masked action (-inf) contributes no entropy and is never sampled or chosen.
    masked = torch.tensor([[0.0, float("-inf"), 1.0]])
    dist = Categorical(masked)
    torch.testing.assert_close(dist.entropy(), D.Categorical(logits=masked[:, [0, 2]]).entropy())
    assert dist.log_prob(torch.tensor([1])).item() == float("-inf")
    assert (Categorical(masked.expand(1000, 3)).sample() != 1).all()


def test_multicategorical_sums_components() -> None:
    nvec = (3, 2, 4)
    logits = torch.randn(5, 9)
    actions = torch.stack([torch.randint(0, n, (5,)) for n in nvec], dim=-1)
    refs = [D.Categorical(logits=part) for part in logits.split(nvec, dim=-1)]
    dist = MultiCategorical(logits, nvec)
    expected = refs[0].log_prob(actions[:, 0]) + refs[1].log_prob(actions[:, 1]) + refs[2].log_prob(actions[:, 2])
    torch.testing.assert_close(dist.log_prob(actions), expected)
    torch.testing.assert_close(dist.entropy(), refs[0].entropy() + refs[1].entropy() + refs[2].entropy())
    assert torch.equal(dist.mode(), torch.stack([p.argmax(-1) for p in logits.split(nvec, dim=-1)], dim=-1))
    sample = dist.sample()
    assert sample.shape == (5, 3) and all((sample[:, i] < n).all() for i, n in enumerate(nvec))
    with pytest.raises(ValueError, match="sum\\(nvec\\) = 9"):
        MultiCategorical(torch.randn(5, 8), nvec)


# ------------------------------------------------------------------------- gaussians


def test_diag_gaussian_matches_torch_reference_with_broadcast_log_std() -> None:
    mean, log_std = torch.randn(5, 3), torch.randn(3)  # state-independent log_std, broadcast to the batch
    actions = torch.randn(5, 3)
    dist = DiagGaussian(mean, log_std)
    ref = D.Independent(D.Normal(mean, log_std.exp().expand(5, 3)), 1)
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions))
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    assert torch.equal(dist.mode(), mean)
    # Two action dimensions form one event (Box of shape (2, 3)).
    mean2 = torch.randn(4, 2, 3)
    dist2, ref2 = DiagGaussian(mean2, torch.zeros(2, 3), event_ndim=2), D.Independent(D.Normal(mean2, 1.0), 2)
    actions2 = torch.randn(4, 2, 3)
    torch.testing.assert_close(dist2.log_prob(actions2), ref2.log_prob(actions2))
    torch.testing.assert_close(dist2.entropy(), ref2.entropy())


def test_diag_gaussian_samples_have_mean_and_std() -> None:
    mean, log_std = torch.tensor([1.0, -2.0]), torch.tensor([0.0, np.log(0.5)], dtype=torch.float32)
    samples = DiagGaussian(mean.expand(20000, 2), log_std.requires_grad_()).sample()
    assert not samples.requires_grad
    torch.testing.assert_close(samples.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.tensor([1.0, 0.5]), atol=0.03, rtol=0)


def test_tanh_diag_gaussian_matches_transformed_distribution() -> None:
    mean = torch.randn(6, 2, dtype=torch.float64)
    log_std = torch.randn(2, dtype=torch.float64) * 0.5
    ref = D.Independent(D.TransformedDistribution(D.Normal(mean, log_std.exp().expand(6, 2)), [D.TanhTransform()]), 1)
    actions = ref.sample()
    dist = TanhDiagGaussian(mean, log_std)
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions))
    # float32 through atanh loses a little precision near the bounds, but stays close.
    dist32 = TanhDiagGaussian(mean.float(), log_std.float())
    torch.testing.assert_close(dist32.log_prob(actions.float()), ref.log_prob(actions).float(), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(dist.mode(), torch.tanh(mean))
    sample = dist.sample()
    assert sample.shape == (6, 2) and (sample.abs() < 1).all()
    # Saturated actions stay finite thanks to the clamp.
    assert torch.isfinite(dist32.log_prob(torch.ones(6, 2))).all()


def test_tanh_entropy_is_an_unbiased_differentiable_estimate() -> None:
    mean = torch.tensor([0.3, -1.0])
    log_std = torch.tensor([0.2, -0.5], requires_grad=True)
    entropy = TanhDiagGaussian(mean.expand(20000, 2), log_std).entropy()
    ref = D.Independent(D.TransformedDistribution(D.Normal(mean, log_std.detach().exp()), [D.TanhTransform()]), 1)
    reference = -ref.log_prob(ref.sample((20000,))).mean()
    torch.testing.assert_close(entropy.mean().detach(), reference, atol=0.05, rtol=0)
    entropy.mean().backward()
    assert log_std.grad is not None and (log_std.grad != 0).all()


# ------------------------------------------------------------------- heads and bounds


def test_action_heads_build_the_right_distribution_with_small_orthogonal_init() -> None:
    features = torch.randn(5, 8)
    head = make_action_head(spaces.Discrete(4), 8)
    assert isinstance(head, CategoricalHead)
    weight = head.logits.weight
    # Orthogonal rows scaled by 0.01: W W^T = 1e-4 I; bias zero.
    torch.testing.assert_close(weight @ weight.T, 1e-4 * torch.eye(4))
    assert head.logits.bias.abs().max().item() == 0.0
    dist = head(features)
    assert isinstance(dist, Categorical) and dist.logits.shape == (5, 4)

    multi = make_action_head(spaces.MultiDiscrete([3, 2]), 8)
    assert isinstance(multi, MultiCategoricalHead) and multi(features).sample().shape == (5, 2)

    box = make_action_head(spaces.Box(-1.0, 1.0, (3,), np.float32), 8)
    assert isinstance(box, DiagGaussianHead)
    assert torch.equal(box.log_std, torch.zeros(3)) and isinstance(box.log_std, torch.nn.Parameter)
    gauss = box(features)
    assert isinstance(gauss, DiagGaussian) and gauss.mean.shape == (5, 3)
    # The log-prob's gradient reaches both the mean layer and log_std.
    gauss.log_prob(torch.randn(5, 3)).sum().backward()
    assert box.mean.weight.grad is not None and box.log_std.grad is not None
    assert isinstance(make_action_head(spaces.Box(-1.0, 1.0, (3,)), 8, squash=True)(features), TanhDiagGaussian)
    # Time-major features [T, N, in_dim] work too.
    assert box(torch.randn(4, 2, 8)).log_prob(torch.randn(4, 2, 3)).shape == (4, 2)


@pytest.mark.parametrize("space", [
    spaces.Dict({"a": spaces.Discrete(2)}),
    spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))),
    spaces.MultiBinary(4),
    spaces.Text(5),
])
def test_unsupported_action_space_is_named_with_the_supported_ones(space: gym.Space) -> None:
    with pytest.raises(ValueError) as err:
        make_action_head(space, 8)
    message = str(err.value)
    assert type(space).__name__ in message
    assert all(name in message for name in ("Discrete", "Box", "MultiDiscrete"))


def test_action_head_rejects_offset_discrete_and_squash_without_box() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        make_action_head(spaces.Discrete(3, start=1), 8)
    with pytest.raises(ValueError, match="squash=True applies to Box"):
        make_action_head(spaces.Discrete(3), 8, squash=True)


def test_clip_and_scale_action_to_box_bounds() -> None:
    space = spaces.Box(np.array([-1.0, -2.0], np.float32), np.array([1.0, 2.0], np.float32))
    action = torch.tensor([[3.0, -3.0], [0.5, 0.0]])
    assert clip_action(action, space).tolist() == [[1.0, -2.0], [0.5, 0.0]]
    assert clip_action(action.double(), space).dtype == torch.float64
    squashed = torch.tensor([[-1.0, 1.0], [0.0, 0.5]])
    assert scale_action(squashed, space).tolist() == [[-1.0, 2.0], [0.0, 1.0]]
    # Infinite bounds: clipping leaves the dimension alone; scaling is impossible.
    half_open = spaces.Box(np.array([-1.0, -np.inf], np.float32), np.array([1.0, np.inf], np.float32))
    assert clip_action(action, half_open).tolist() == [[1.0, -3.0], [0.5, 0.0]]
    with pytest.raises(ValueError, match="finite bounds"):
        scale_action(squashed, half_open)
    with pytest.raises(ValueError, match="Box"):
        clip_action(action, spaces.Discrete(2))


# --------------------------------------------------------------- reward normalisation


class _ScriptedEnv(VecEnv):
    """Replays given rewards, terminations and truncations ([T, N] each); observation = step count."""

    def __init__(self, rewards: list[list[float]], terminated: list[list[bool]], truncated: list[list[bool]]):
        self.rewards = torch.tensor(rewards)
        self.terminated, self.truncated = torch.tensor(terminated), torch.tensor(truncated)
        self.num_envs = self.rewards.shape[1]
        self.device = torch.device("cpu")
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.env_id = "Scripted"
        self.t = 0

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        self.t = 0
        return torch.zeros(self.num_envs, 1), {}

    def step(self, action: torch.Tensor):
        t = self.t
        self.t += 1
        obs = torch.full((self.num_envs, 1), float(self.t))
        return obs, self.rewards[t], self.terminated[t], self.truncated[t], {"final_obs": obs}


# Two envs, gamma 0.5: env 0 terminates at step 1, env 1 truncates at step 2.
REWARDS = [[1.0, 2.0], [2.0, 0.0], [4.0, 1.0], [1.0, 1.0]]
TERMINATED = [[False, False], [True, False], [False, False], [False, False]]
TRUNCATED = [[False, False], [False, False], [False, True], [False, False]]
# R <- 0.5 R + r, restarting after an episode's last step.
DISCOUNTED_RETURNS = [
    [1.0, 2.0],
    [0.5 * 1.0 + 2.0, 0.5 * 2.0 + 0.0],  # [2.5, 1.0]; env 0 ends
    [4.0, 0.5 * 1.0 + 1.0],  # [4.0, 1.5]; env 1 ends
    [0.5 * 4.0 + 1.0, 1.0],  # [3.0, 1.0]
]


def _scripted(**kwargs: Any) -> RewardNormalization:
    env = RewardNormalization(EpisodeStatistics(_ScriptedEnv(REWARDS, TERMINATED, TRUNCATED)), gamma=0.5, **kwargs)
    env.reset()
    return env


def test_reward_normalization_scales_by_std_of_discounted_returns() -> None:
    env = _scripted()
    seen: list[float] = []
    for step in range(4):
        _, reward, _, _, info = env.step(torch.zeros(2))
        seen += DISCOUNTED_RETURNS[step]
        expected = np.array(REWARDS[step]) / np.sqrt(np.var(seen) + 1e-8)
        np.testing.assert_allclose(reward.numpy(), expected, rtol=1e-6)
        assert reward.dtype == torch.float32
    # EpisodeStatistics sits inside, so the reported returns are the raw game score.
    assert info["episode_return"].tolist() == [0.0, 0.0]
    ret_sum, _, count = env.find(EpisodeStatistics).pop_finished()
    assert count.item() == 2 and ret_sum.item() == (1.0 + 2.0) + (2.0 + 0.0 + 1.0)
    assert env.return_rms.count.item() == 8
    assert env.return_rms.var.item() == pytest.approx(np.var(seen))


def test_reward_normalization_clips() -> None:
    env = _scripted(clip=0.5)
    _, reward, *_ = env.step(torch.zeros(2))
    # Unclipped: [1, 2] / std([1, 2]) = [2, 4].
    assert reward.tolist() == [0.5, 0.5]


def test_reward_normalization_state_round_trip_and_frozen_evaluation() -> None:
    env = _scripted()
    env.step(torch.zeros(2))
    env.step(torch.zeros(2))
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    assert state["returns"].tolist() == [0.0, 1.0]  # env 0's return restarted after its termination

    fresh = _scripted()
    fresh.env.env.t = 2  # the scripted env itself has no state to restore
    fresh.load_state_dict(state)
    for _ in range(2):
        expected = env.step(torch.zeros(2))[1]
        torch.testing.assert_close(fresh.step(torch.zeros(2))[1], expected)

    frozen = _scripted()
    frozen.load_state_dict(state)
    frozen.env.env.t = 2
    frozen.training = False
    stats = {k: v.clone() for k, v in frozen.return_rms.state_dict().items()}
    _, reward, *_ = frozen.step(torch.zeros(2))
    for key, value in stats.items():
        torch.testing.assert_close(getattr(frozen.return_rms, key), value)
    np.testing.assert_allclose(reward.numpy(), np.array(REWARDS[2]) / np.sqrt(stats["var"].item() + 1e-8), rtol=1e-6)
    # The per-env return still accumulates (and restarts), ready for when training resumes.
    assert frozen.state_dict()["returns"].tolist() == [4.0, 0.0]


def test_reward_normalization_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="gamma"):
        RewardNormalization(_ScriptedEnv(REWARDS, TERMINATED, TRUNCATED), gamma=0.0)
    with pytest.raises(ValueError, match="clip"):
        RewardNormalization(_ScriptedEnv(REWARDS, TERMINATED, TRUNCATED), clip=0.0)
