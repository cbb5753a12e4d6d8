"""rlcore.rollout against hand-computed values: GAE (bootstrap, termination, truncation),
its limits (Monte-Carlo, one-step TD), advantage normalisation and the rollout buffer."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from envs.core import VecEnv
from rlcore.rollout import (
    RolloutBatch,
    RolloutBuffer,
    collect,
    compute_gae,
    gae_advantages,
    group_advantages,
    make_rollout_buffer,
    masked_mean,
    normalize_advantages,
)

GAMMA, LAM = 0.5, 0.5  # powers of two: every hand-computed value below is exact in binary floating point

# [T=4, N=3]; columns: (a) runs on and bootstraps from V = 4 after the rollout,
# (b) terminates at t=1 (V(final obs) = 5 must be ignored), (c) truncates at t=2 (bootstraps from V = 6).


REWARDS = [[1.0, 1.0, 0.0], [2.0, 1.0, 1.0], [3.0, 1.0, 2.0], [4.0, 1.0, 3.0]]


VALUES = [[0.5, 2.0, 1.0], [1.0, 1.0, 2.0], [1.5, 3.0, 1.0], [2.0, 2.0, 3.0]]
# values[t + 1] where the step did not end an episode, V(final obs) where it did, the bootstrap at t = T-1.


FINAL_VALUES = [[1.0, 1.0, 2.0], [1.5, 5.0, 1.0], [2.0, 2.0, 6.0], [4.0, 4.0, 2.0]]


TERMINATED = [[False, False, False], [False, True, False], [False, False, False], [False, False, False]]


TRUNCATED = [[False, False, False], [False, False, False], [False, False, True], [False, False, False]]


LAST_VALUES = [4.0, 4.0, 2.0]

# delta_t = r_t + gamma * (1 - terminated_t) * final_values[t] - values[t]


DELTAS = [
    [1 + 0.5 * 1.0 - 0.5, 1 + 0.5 * 1.0 - 2.0, 0 + 0.5 * 2.0 - 1.0],  # [1.0, -0.5, 0.0]
    [2 + 0.5 * 1.5 - 1.0, 1 + 0.0 * 5.0 - 1.0, 1 + 0.5 * 1.0 - 2.0],  # [1.75, 0.0, -0.5]
    [3 + 0.5 * 2.0 - 1.5, 1 + 0.5 * 2.0 - 3.0, 2 + 0.5 * 6.0 - 1.0],  # [2.5, -1.0, 4.0]
    [4 + 0.5 * 4.0 - 2.0, 1 + 0.5 * 4.0 - 2.0, 3 + 0.5 * 2.0 - 3.0],  # [4.0, 1.0, 1.0]
]
# A_t = delta_t + gamma * lam (= 0.25) * A_{t+1}, the trace cut after b's t=1 and c's t=2.


ADVANTAGES = [
    [1.0 + 0.25 * 2.625, -0.5 + 0.25 * 0.0, 0.0 + 0.25 * 0.5],  # [1.65625, -0.5, 0.125]
    [1.75 + 0.25 * 3.5, 0.0, -0.5 + 0.25 * 4.0],  # [2.625, 0.0, 0.5]
    [2.5 + 0.25 * 4.0, -1.0 + 0.25 * 1.0, 4.0],  # [3.5, -0.75, 4.0]
    [4.0, 1.0, 1.0],
]


def t(x, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


def example_inputs(dtype=torch.float32) -> tuple[torch.Tensor, ...]:
    return (t(REWARDS, dtype), t(VALUES, dtype), t(TERMINATED, torch.bool), t(TRUNCATED, torch.bool),
            t(FINAL_VALUES, dtype))


# ------------------------------------------------------------------------------- GAE


def test_gae_hand_computed_bootstrap_termination_truncation() -> None:
    adv, ret = compute_gae(*example_inputs(), gamma=GAMMA, lam=LAM)
    assert adv.dtype == torch.float32 and adv.shape == (4, 3)
    assert adv.tolist() == ADVANTAGES
    expected_returns = [[a + v for a, v in zip(ra, rv)] for ra, rv in zip(ADVANTAGES, VALUES)]
    assert ret.tolist() == expected_returns
    # Spot checks written out in full: column (b) restarts at t=2, column (c)'s t=2 sees no later step.
    assert adv[1, 1].item() == 1.0 + 0.0 * 5.0 - 1.0
    assert adv[2, 2].item() == 2.0 + 0.5 * 6.0 - 1.0


def test_gae_keeps_float64() -> None:
    adv, ret = compute_gae(*example_inputs(torch.float64), gamma=GAMMA, lam=LAM)
    assert adv.dtype == ret.dtype == torch.float64
    assert adv.tolist() == ADVANTAGES


def test_truncation_bootstraps_where_termination_does_not() -> None:
    rewards, values, terminated, truncated, final_values = example_inputs()
    adv_trunc, _ = compute_gae(rewards, values, terminated, truncated, final_values, GAMMA, LAM)
    # Same data with column (c)'s truncation at t=2 turned into a termination.
    flipped_term, flipped_trunc = terminated.clone(), truncated.clone()
    flipped_term[2, 2], flipped_trunc[2, 2] = True, False
    adv_term, _ = compute_gae(rewards, values, flipped_term, flipped_trunc, final_values, GAMMA, LAM)
    diff = adv_trunc - adv_term
    # At the ending step the difference is exactly the bootstrap gamma * V(final obs) = 0.5 * 6;
    # earlier steps of that episode see it discounted by (gamma * lam)^k, later ones not at all.
    assert diff[:, 2].tolist() == [0.25**2 * 3.0, 0.25 * 3.0, 0.5 * 6.0, 0.0]
    assert diff[:, :2].abs().max().item() == 0.0


def test_gamma_one_lambda_one_is_monte_carlo_return_to_go() -> None:
    # One env, episodes ending (terminated) at t=1 and t=3: returns are the rewards still to come.
    rewards = t([[1.0], [2.0], [3.0], [4.0]])
    values = torch.randn(4, 1)  # any baseline: returns = advantages + values do not depend on it
    terminated = t([[False], [True], [False], [True]], torch.bool)
    truncated = torch.zeros(4, 1, dtype=torch.bool)
    final_values = torch.cat((values[1:], torch.randn(1, 1)))
    final_values[1] = 123.0  # V(final obs) of a terminated step is never used
    adv, ret = compute_gae(rewards, values, terminated, truncated, final_values, gamma=1.0, lam=1.0)
    torch.testing.assert_close(ret, t([[3.0], [2.0], [7.0], [4.0]]))
    torch.testing.assert_close(adv, ret - values)


def test_lambda_zero_is_one_step_td() -> None:
    gen = torch.Generator().manual_seed(0)
    rewards, values, final_values = (torch.randn(5, 4, generator=gen) for _ in range(3))
    terminated = torch.rand(5, 4, generator=gen) < 0.3
    truncated = (torch.rand(5, 4, generator=gen) < 0.3) & ~terminated
    adv, ret = compute_gae(rewards, values, terminated, truncated, final_values, gamma=0.9, lam=0.0)
    td_error = rewards + 0.9 * (~terminated).float() * final_values - values
    torch.testing.assert_close(adv, td_error)
    torch.testing.assert_close(ret, rewards + 0.9 * (~terminated).float() * final_values)


def test_gae_rejects_mismatched_inputs() -> None:
    rewards, values, terminated, truncated, final_values = example_inputs()
    with pytest.raises(ValueError, match="values has shape"):
        compute_gae(rewards, values[:3], terminated, truncated, final_values, GAMMA, LAM)
    with pytest.raises(ValueError, match="bool"):
        compute_gae(rewards, values, terminated.float(), truncated, final_values, GAMMA, LAM)
    with pytest.raises(ValueError, match="lam"):
        compute_gae(rewards, values, terminated, truncated, final_values, GAMMA, 1.5)


# -------------------------------------------------------------------- normalisation


def test_normalize_advantages_plain_and_masked() -> None:
    # mean 2, Bessel std 1.
    assert normalize_advantages(t([1.0, 2.0, 3.0]), eps=0.0).tolist() == [-1.0, 0.0, 1.0]
    adv = t([[1.0, 100.0], [2.0, -50.0], [3.0, 7.0]])
    mask = t([[True, False], [True, False], [True, False]], torch.bool)
    # Padding (100, -50, 7) neither shifts the statistics nor keeps a value.
    assert normalize_advantages(adv, mask, eps=0.0).tolist() == [[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    # A single element normalises to 0, not NaN.
    assert normalize_advantages(t([5.0])).tolist() == [0.0]
    single = torch.zeros(3, 2, dtype=torch.bool)
    single[0, 0] = True
    assert normalize_advantages(adv, single).tolist() == [[0.0, 0.0]] * 3
    with pytest.raises(ValueError, match="mask"):
        normalize_advantages(adv, mask[:2])


# ------------------------------------------------------------------------------- buffer


def filled_buffer(obs_shape=(2,), obs_dtype=torch.float32) -> RolloutBuffer:
    """The hand-computed example stored step by step; obs, action and logprob encode the flat index."""
    buf = RolloutBuffer(4, 3, obs_shape, obs_dtype, (), torch.long)
    for step in range(4):
        index = torch.arange(3) + 3 * step
        # final_values only matters where an episode ended: pass junk elsewhere to prove it.
        final_values = torch.where(t(TERMINATED[step], torch.bool) | t(TRUNCATED[step], torch.bool),
                                   t(FINAL_VALUES[step]), -99.0)
        buf.add(
            obs=index.view(3, *[1] * len(obs_shape)).expand(3, *obs_shape).to(obs_dtype),
            actions=index,
            logprobs=-index.float(),
            values=t(VALUES[step]),
            rewards=t(REWARDS[step]),
            terminated=t(TERMINATED[step], torch.bool),
            truncated=t(TRUNCATED[step], torch.bool),
            final_values=final_values,
        )
    buf.compute_returns_and_advantages(t(LAST_VALUES), GAMMA, LAM)
    return buf


def test_buffer_completes_final_values_and_matches_hand_computed_gae() -> None:
    buf = filled_buffer()
    assert len(buf) == 12 and buf.full
    assert buf.final_values.tolist() == FINAL_VALUES
    assert buf.advantages.tolist() == ADVANTAGES
    torch.testing.assert_close(buf.returns, t(ADVANTAGES) + t(VALUES))


def test_minibatches_cover_every_transition_once_per_epoch() -> None:
    buf = filled_buffer()
    for _ in range(3):
        seen = []
        for batch in buf.minibatches(4):
            assert isinstance(batch, RolloutBatch)
            assert batch.obs.shape == (3, 2) and batch.actions.shape == (3,)
            index = batch.actions
            # Every field of a row comes from the same transition.
            assert torch.equal(batch.obs[:, 0].long(), index) and torch.equal(batch.logprobs, -index.float())
            assert torch.equal(batch.values, buf.values.view(-1)[index])
            assert torch.equal(batch.advantages, buf.advantages.view(-1)[index])
            assert torch.equal(batch.returns, buf.returns.view(-1)[index])
            seen.append(index)
        assert sorted(torch.cat(seen).tolist()) == list(range(12))


def test_minibatch_indices_and_batch_are_what_minibatches_yields() -> None:
    """The CUDA-graph update draws its minibatches as row indices and gathers them itself; from the
    same RNG state it must see exactly the batches the eager update iterates over."""
    buf = filled_buffer()
    torch.manual_seed(5)
    eager = list(buf.minibatches(3))
    torch.manual_seed(5)
    indices = buf.minibatch_indices(3)
    assert [len(i) for i in indices] == [4, 4, 4]
    for idx, batch in zip(indices, eager, strict=True):
        assert torch.equal(idx, batch.actions)  # filled_buffer's action at flat row r is r
        for got, expected in zip(buf.batch(idx), batch, strict=True):
            assert (got is None and expected is None) or torch.equal(got, expected)


def test_minibatches_reproducible_under_manual_seed_and_generator() -> None:
    buf = filled_buffer()

    def order(**kwargs) -> list[int]:
        return torch.cat([b.actions for b in buf.minibatches(2, **kwargs)]).tolist()

    torch.manual_seed(7)
    first = order()
    torch.manual_seed(7)
    assert order() == first
    assert order(generator=torch.Generator().manual_seed(3)) == order(generator=torch.Generator().manual_seed(3))


def test_minibatches_reject_bad_counts_naming_both_values() -> None:
    buf = filled_buffer()
    for bad in (5, 13, 0):
        with pytest.raises(ValueError, match=rf"num_minibatches = {bad} .*4 \* 3 = 12"):
            buf.minibatches(bad)
    assert len(list(buf.minibatches(12))) == 12 and len(list(buf.minibatches(1))) == 1


def test_buffer_stores_token_sequences_and_enforces_its_protocol() -> None:
    # Language-model observations: int64 token ids of a padded context.
    buf = filled_buffer(obs_shape=(5,), obs_dtype=torch.int64)
    assert buf.obs.shape == (4, 3, 5) and buf.obs.dtype == torch.int64
    assert next(buf.minibatches(3)).obs.dtype == torch.int64
    with pytest.raises(RuntimeError, match="reset"):
        buf.add(obs=buf.obs[0], actions=buf.actions[0], logprobs=buf.logprobs[0], values=buf.values[0],
                rewards=buf.rewards[0], terminated=buf.terminated[0], truncated=buf.truncated[0],
                final_values=buf.final_values[0])
    buf.reset()
    with pytest.raises(ValueError, match=r"values has shape \(3, 1\)"):
        buf.add(obs=buf.obs[0], actions=buf.actions[0], logprobs=buf.logprobs[0], values=buf.values[0].view(3, 1),
                rewards=buf.rewards[0], terminated=buf.terminated[0], truncated=buf.truncated[0],
                final_values=buf.final_values[0])
    with pytest.raises(RuntimeError, match="0 of 4 steps"):
        buf.compute_returns_and_advantages(t(LAST_VALUES), GAMMA, LAM)
    with pytest.raises(RuntimeError, match="compute_returns_and_advantages"):
        buf.minibatches(1)


def test_masked_mean():
    x = torch.tensor([[1.0, 2.0, float("nan")], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor(1.5))  # the NaN is masked out, not averaged in
    torch.testing.assert_close(masked_mean(x, mask, dim=1), torch.tensor([1.5, 0.0]))  # no True entries -> 0
    torch.testing.assert_close(masked_mean(x, ~mask, dim=0), torch.tensor([4.0, 5.0, float("nan")]), equal_nan=True)


def test_normalize_advantages_with_a_mask_along_a_dimension_normalises_each_row_over_its_real_entries():
    adv = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 8.0, -5.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = normalize_advantages(adv, mask=mask, dim=-1)
    for row in range(2):
        real = adv[row][mask[row]]
        torch.testing.assert_close(out[row][mask[row]], (real - real.mean()) / (real.std() + 1e-8))
    assert torch.equal(out[~mask], torch.zeros(3))
    torch.testing.assert_close(normalize_advantages(adv, mask=torch.ones_like(mask), dim=-1),
                               normalize_advantages(adv, dim=-1))


class Countdown(VecEnv):
    """Two copies; each step's reward is the step count; copy 0 is cut by a time limit every 2 steps,
    copy 1 terminates every 3. Observations count up; the final observation is marked by -1."""

    env_id, num_envs, device = "Countdown", 2, torch.device("cpu")
    single_observation_space = gym.spaces.Box(-10, 10, (1,))
    single_action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None):
        self.t = torch.zeros(2)
        return self.t.unsqueeze(1).clone(), {}

    def step(self, action):
        self.t += 1
        truncated, terminated = torch.tensor([self.t[0] % 2 == 0, False]), torch.tensor([False, self.t[1] % 3 == 0])
        final = torch.where((truncated | terminated).unsqueeze(1), -1.0, self.t.unsqueeze(1))
        reward = self.t.clone()
        self.t = torch.where(truncated | terminated, 0.0, self.t)
        return self.t.unsqueeze(1).clone(), reward, terminated, truncated, {"final_obs": final}


class ValueOfObs(torch.nn.Module):
    """V(s) = 10 * s; always action 1 with log-probability -0.5."""

    def act(self, obs):
        return torch.ones(obs.shape[0], dtype=torch.long), torch.full((obs.shape[0],), -0.5), self.value(obs)

    def value(self, obs):
        return 10 * obs[:, 0]

    def to_env(self, action):
        return action


@pytest.mark.parametrize("bootstrap", [True, False])


def test_collect_fills_the_buffer_and_bootstraps_only_where_a_time_limit_cut_an_episode(bootstrap):
    env, policy = Countdown(), ValueOfObs()
    buffer = make_rollout_buffer(env, 4, "cpu")
    assert buffer.obs.dtype == torch.float32 and buffer.actions.dtype == torch.long
    obs, _ = env.reset()
    next_obs, texts = collect(env, policy, buffer, obs, bootstrap=bootstrap)
    assert texts is None and torch.equal(next_obs, torch.tensor([[0.0], [1.0]]))
    assert torch.equal(buffer.obs[:, :, 0], torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0], [1.0, 0.0]]))
    assert torch.equal(buffer.rewards, torch.tensor([[1.0, 1.0], [2.0, 2.0], [1.0, 3.0], [2.0, 1.0]]))
    assert torch.equal(buffer.truncated[:, 0], torch.tensor([False, True, False, True]))
    # V(final obs) = 10 * -1 where copy 0 was cut, else 0 (a termination needs none; other steps use the next value).
    cut = -10.0 if bootstrap else 0.0
    assert torch.equal(buffer.final_values[:, 0], torch.tensor([0.0, cut, 0.0, cut]))
    assert torch.equal(buffer.logprobs, torch.full((4, 2), -0.5)) and torch.equal(buffer.values, 10 * buffer.obs[:, :, 0])
    gae_advantages(buffer, policy, next_obs, gamma=1.0, lam=1.0)
    # Copy 1 at t=3 starts a new episode: its return bootstraps from V(next obs) = 10.
    assert buffer.returns[3, 1] == 1.0 + 10.0
    # Copy 0 at t=1 was cut: its return is its reward plus V(final obs).
    assert buffer.returns[1, 0] == 2.0 + cut


def test_group_advantages_leave_one_out_by_hand():
    returns = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0])
    # Group 1: 1 - (2+3)/2 = -1.5, 2 - 2 = 0, 3 - 1.5 = 1.5; group 2: 6 - 0, 0 - 3, 0 - 3.
    torch.testing.assert_close(group_advantages(returns, 3), torch.tensor([-1.5, 0.0, 1.5, 6.0, -3.0, -3.0]))
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(returns, 4)


def test_sequence_minibatches_keep_each_episode_whole_and_carry_the_mask():
    buf = RolloutBuffer(3, 4, (2,), torch.long, (), torch.long)
    for t in range(3):
        buf.add(obs=torch.full((4, 2), t), actions=torch.arange(4) + 10 * t, logprobs=torch.zeros(4),
                values=torch.zeros(4), rewards=torch.ones(4), terminated=torch.zeros(4, dtype=torch.bool),
                truncated=torch.full((4,), t == 2), final_values=torch.zeros(4), valid=torch.tensor([True, True, t < 2, True]))
    buf.compute_returns_and_advantages(torch.zeros(4), 1.0, 1.0)
    batches = list(buf.minibatches(2, sequences=True))
    assert [b.actions.shape for b in batches] == [(2, 3), (2, 3)]
    for b in batches:
        env = b.actions[:, 0]
        assert torch.equal(b.actions, env.unsqueeze(1) + torch.tensor([0, 10, 20]))  # steps in order, one env per row
        expected = torch.ones(2, 3, dtype=torch.bool)
        expected[env == 2, 2] = False  # env 2 idled at its last step
        assert torch.equal(b.mask, expected)
        assert b.obs.shape == (2, 3, 2)
    with pytest.raises(ValueError, match="divide num_envs"):
        buf.minibatches(3, sequences=True)
