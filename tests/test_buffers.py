"""Replay buffers against hand-computed values: storage, n-step returns, memory-optimised
next_obs, the sum tree, prioritised sampling and checkpoints."""

from __future__ import annotations

import io

import pytest
import torch

from rlcore.buffers import PrioritizedReplayBuffer, ReplayBatch, ReplayBuffer, SumTree


def scalar_buffer(cls=ReplayBuffer, capacity=10, num_envs=1, **kwargs):
    """Observations of shape (1,) float32, discrete actions."""
    return cls(capacity, num_envs, (1,), torch.float32, (), torch.long, **kwargs)


def add_scalar(buf, obs, reward, next_obs, terminated=None, truncated=None):
    """One step; lists have one entry per env."""
    n = len(obs)
    buf.add(
        torch.tensor(obs, dtype=torch.float32).view(n, 1),
        torch.tensor(obs, dtype=torch.long),
        torch.tensor(reward, dtype=torch.float32),
        torch.tensor(next_obs, dtype=torch.float32).view(n, 1),
        torch.tensor(terminated or [False] * n),
        torch.tensor(truncated or [False] * n),
    )


# ---------------------------------------------------------------- storage


def test_wraparound_overwrites_oldest_and_nstep_wraps_the_ring():
    buf = scalar_buffer(capacity=5, num_envs=2, n_step=3, gamma=0.5)
    assert buf.capacity_per_env == 3 and buf.capacity == 6
    for t in range(7):
        add_scalar(buf, [10 * t, 10 * t + 1], [t, t], [10 * t + 5, 10 * t + 6])
        if t == 1:
            assert len(buf) == 4
    assert len(buf) == 6
    state = buf.state_dict()
    # Rows are t % 3: row 0 holds t=6, row 1 t=4, row 2 t=5; t=0..3 were overwritten.
    assert state["obs"][:, :, 0].tolist() == [[60, 61], [40, 41], [50, 51]]
    assert state["next_obs"][:, :, 0].tolist() == [[65, 66], [45, 46], [55, 56]]
    assert state["rewards"].tolist() == [[6, 6], [4, 4], [5, 5]]
    # n-step windows run oldest -> newest across the ring's end (row 2 -> row 0), per env column.
    batch = buf.gather(torch.tensor([2, 3, 4, 5, 0, 1]))  # t=4 env0, t=4 env1, t=5 x2, t=6 x2
    assert batch.obs[:, 0].tolist() == [40, 41, 50, 51, 60, 61]
    assert batch.rewards.tolist() == [4 + 0.5 * 5 + 0.25 * 6] * 2 + [5 + 0.5 * 6] * 2 + [6.0] * 2
    assert batch.next_obs[:, 0].tolist() == [65, 66, 65, 66, 65, 66]
    assert batch.discounts.tolist() == [0.125] * 2 + [0.25] * 2 + [0.5] * 2


def test_uniform_sampling_returns_only_stored_transitions():
    buf = scalar_buffer(capacity=10, num_envs=2)
    for t in range(3):
        add_scalar(buf, [10 * t, 10 * t + 1], [t, -t], [10 * t + 5, 10 * t + 6])
    batch = buf.sample(2000)
    assert isinstance(batch, ReplayBatch)
    obs = batch.obs[:, 0]
    assert set(obs.tolist()) == {0.0, 1.0, 10.0, 11.0, 20.0, 21.0}
    assert torch.equal(batch.actions, obs.long())
    assert torch.equal(batch.next_obs[:, 0], obs + 5)
    env = obs.long() % 10
    assert torch.equal(batch.rewards, torch.where(env == 0, 1.0, -1.0) * (obs // 10))
    assert torch.equal(batch.indices, (obs // 10).long() * 2 + env)
    assert torch.equal(batch.weights, torch.ones(2000))
    assert batch.rewards.dtype == torch.float32 and batch.terminated.dtype == torch.bool


def test_sample_needs_a_stored_step_and_allows_replacement():
    buf = scalar_buffer()
    with pytest.raises(RuntimeError, match="at least 1 step"):
        buf.sample(4)
    add_scalar(buf, [3], [1], [4])
    assert buf.sample(8).obs[:, 0].tolist() == [3.0] * 8


def test_add_rejects_wrong_shapes():
    buf = scalar_buffer(num_envs=2)
    with pytest.raises(ValueError, match="reward has shape"):
        buf.add(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.zeros(2, 1),
                torch.zeros(2, 1), torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool))


@pytest.mark.parametrize("kwargs, field", [
    ({"capacity": 0}, "capacity"),
    ({"num_envs": 0}, "num_envs"),
    ({"n_step": 0}, "n_step"),
    ({"gamma": 0.0}, "gamma"),
    ({"gamma": 1.5}, "gamma"),
    ({"capacity": 2, "num_envs": 2, "optimize_memory_usage": True}, "capacity"),
    ({"alpha": -0.1}, "alpha"),
    ({"beta": -1.0}, "beta"),
    ({"eps": 0.0}, "eps"),
])
def test_constructor_validation_names_the_field(kwargs, field):
    args = {"capacity": 10, "num_envs": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"PrioritizedReplayBuffer\.{field} = .* must be"):
        scalar_buffer(PrioritizedReplayBuffer, **args)


# ----------------------------------------------------------------- n-step

# One env, n=3, gamma=0.5. Steps t: (obs, reward, next_obs, terminated, truncated).
EPISODES = [
    (0, 1, 1, False, False),
    (1, 2, 2, False, False),
    (2, 4, 102, True, False),  # termination, final obs 102
    (3, 8, 4, False, False),   # reset obs 3
    (4, 16, 104, False, True),  # time-limit truncation, final obs 104
    (5, 32, 6, False, False),
    (6, 64, 7, False, False),
    (7, 128, 8, False, False),  # newest step
]
# Per start step: (n-step return, next_obs, terminated, truncated, discount).
EXPECTED = [
    (1 + 0.5 * 2 + 0.25 * 4, 102, True, False, 0.0),  # across a termination: no bootstrap
    (2 + 0.5 * 4, 102, True, False, 0.0),
    (4, 102, True, False, 0.0),
    (8 + 0.5 * 16, 104, False, True, 0.25),  # across a truncation: bootstrap gamma**2 from the final obs
    (16, 104, False, True, 0.5),
    (32 + 0.5 * 64 + 0.25 * 128, 8, False, False, 0.125),  # middle of an episode: full n
    (64 + 0.5 * 128, 8, False, False, 0.25),  # stopped by the newest step, m = 2
    (128, 8, False, False, 0.5),  # the newest step, m = 1
]


def fill_episodes(buf, num_envs=1):
    """EPISODES in env 0; other envs see constant reward 1 and never end."""
    for obs, reward, nxt, term, trunc in EPISODES:
        add_scalar(buf, [obs] + [1000] * (num_envs - 1), [reward] + [1] * (num_envs - 1),
                   [nxt] + [1000] * (num_envs - 1), [term] + [False] * (num_envs - 1),
                   [trunc] + [False] * (num_envs - 1))


def check_expected(batch: ReplayBatch, starts):
    for i, t in enumerate(starts):
        ret, nxt, term, trunc, disc = EXPECTED[t]
        assert batch.obs[i, 0].item() == EPISODES[t][0]
        assert batch.rewards[i].item() == ret, t
        assert batch.next_obs[i, 0].item() == nxt, t
        assert batch.terminated[i].item() == term, t
        assert batch.truncated[i].item() == trunc, t
        assert batch.discounts[i].item() == disc, t


def test_nstep_returns_across_termination_truncation_middle_and_newest():
    buf = scalar_buffer(capacity=10, n_step=3, gamma=0.5)
    fill_episodes(buf)
    check_expected(buf.gather(torch.arange(8)), range(8))
    batch = buf.sample(500)  # sampling agrees with the table for every index it draws
    check_expected(batch, batch.indices.tolist())


def test_nstep_does_not_mix_env_columns():
    buf = scalar_buffer(capacity=20, num_envs=2, n_step=3, gamma=0.5)
    fill_episodes(buf, num_envs=2)
    check_expected(buf.gather(torch.arange(8) * 2), range(8))
    other = buf.gather(torch.arange(8) * 2 + 1)
    assert other.rewards.tolist() == [1.75] * 6 + [1.5, 1.0]
    assert other.discounts.tolist() == [0.125] * 6 + [0.25, 0.5]
    assert not other.terminated.any() and not other.truncated.any()


def test_termination_wins_when_a_step_is_both_terminated_and_truncated():
    buf = scalar_buffer(n_step=2, gamma=0.5)
    add_scalar(buf, [0], [1], [9], [True], [True])
    batch = buf.gather(torch.tensor([0]))
    assert batch.terminated.item() and not batch.truncated.item() and batch.discounts.item() == 0.0


# ---------------------------------------------------- optimize_memory_usage


def image_steps(num_envs, steps, seed):
    """A uint8 image stream with random episode ends; next_obs follows the VecEnv contract."""
    g = torch.Generator().manual_seed(seed)
    counter = 0

    def frame():
        nonlocal counter
        counter += 1
        return torch.full((num_envs, 2, 3), 0, dtype=torch.uint8) + (torch.arange(num_envs, dtype=torch.uint8)
                                                                     * 50 + counter % 50).view(-1, 1, 1)
    obs = frame()
    out = []
    for _ in range(steps):
        succ = frame()
        term = torch.rand(num_envs, generator=g) < 0.2
        trunc = ~term & (torch.rand(num_envs, generator=g) < 0.2)
        final = torch.where((term | trunc).view(-1, 1, 1), 255 - succ, succ)  # true last obs
        reward = torch.rand(num_envs, generator=g)
        action = torch.randint(4, (num_envs,), generator=g)
        out.append((obs, action, reward, final, term, trunc))
        obs = succ  # where an episode ended, succ plays the reset observation
    return out


@pytest.mark.parametrize("n_step", [1, 3])
def test_optimize_memory_usage_matches_plain_storage(n_step):
    num_envs, steps, capacity = 3, 40, 30  # wraps: 10 rows per env, 40 steps
    data = image_steps(num_envs, steps, seed=n_step)
    kwargs = {"capacity": capacity, "num_envs": num_envs, "obs_shape": (2, 3), "obs_dtype": torch.uint8,
                  "action_shape": (), "action_dtype": torch.long, "n_step": n_step, "gamma": 0.9}
    small = ReplayBuffer(**kwargs, optimize_memory_usage=True)
    plain = ReplayBuffer(**kwargs)
    for step in data:
        small.add(*step)
    # The memory-optimised buffer cannot use its newest step yet, so it must agree with a
    # plain buffer that has not seen that step.
    for step in data[:-1]:
        plain.add(*step)
    # Sampleable in `small`: steps 30..38, i.e. every row but the newest (39 % 10 = 9).
    rows = torch.tensor([s % 10 for s in range(30, 39)])
    indices = (rows.view(-1, 1) * num_envs + torch.arange(num_envs)).flatten()
    a, b = small.gather(indices), plain.gather(indices)
    for name in ReplayBatch._fields:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.next_obs.dtype == torch.uint8
    ended = torch.stack([t | u for *_, t, u in data])[30:39].flatten()
    assert ended.any()  # the comparison covered episode ends, where next_obs comes from the side ring
    assert small.sample(3000).indices.div(num_envs, rounding_mode="floor").ne(9).all()  # newest row never drawn


def test_optimize_memory_usage_needs_two_steps_to_sample():
    buf = scalar_buffer(capacity=10, optimize_memory_usage=True)
    add_scalar(buf, [0], [1], [1])
    with pytest.raises(RuntimeError, match="at least 2 steps"):
        buf.sample(1)
    add_scalar(buf, [1], [1], [2])
    assert buf.sample(4).obs[:, 0].tolist() == [0.0] * 4


def test_overwritten_side_entry_gives_weight_zero():
    buf = scalar_buffer(capacity=100, optimize_memory_usage=True)
    assert buf.side_capacity == 64
    for t in range(70):  # every step ends an episode: side slots of steps 0..5 are reused by 64..69
        add_scalar(buf, [t], [1], [1000 + t], [True])
    batch = buf.gather(torch.arange(69))
    assert batch.weights[:6].tolist() == [0.0] * 6
    assert torch.equal(batch.weights[6:], torch.ones(63))
    assert torch.equal(batch.next_obs[6:, 0], 1000.0 + torch.arange(6, 69))
    sampled = buf.sample(2000)
    assert torch.equal(sampled.weights, (sampled.indices >= 6).float())


# ----------------------------------------------------------------- sum tree


def test_sum_tree_totals_and_prefix_search():
    tree = SumTree(5)
    assert tree.tree.shape == (16,)
    tree.update(torch.arange(5), torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0]))
    assert tree.total().item() == 10.0
    prefix = torch.tensor([0.0, 0.99, 1.0, 2.5, 3.0, 5.9, 6.0, 9.99, 10.0])
    # 10.0 == total lands on the last positive leaf, never the empty leaf 4.
    assert tree.find(prefix).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    tree.update(torch.tensor([1, 1, 3]), torch.tensor([5.0, 7.0, 0.0]))  # duplicates: largest wins
    assert tree.get(torch.arange(5)).tolist() == [1.0, 7.0, 3.0, 0.0, 0.0]
    assert tree.total().item() == 11.0
    internal = torch.arange(1, 8)
    assert torch.equal(tree.tree[internal], tree.tree[2 * internal] + tree.tree[2 * internal + 1])
    assert tree.find(torch.tensor([10.5, 11.0])).tolist() == [2, 2]


def test_sum_tree_of_one_leaf():
    tree = SumTree(1)
    tree.update(torch.tensor([0]), torch.tensor([2.5]))
    assert tree.total().item() == 2.5 and tree.find(torch.tensor([0.0, 2.4])).tolist() == [0, 0]


# ------------------------------------------------------------ prioritised


def four_transitions(**kwargs):
    buf = scalar_buffer(PrioritizedReplayBuffer, capacity=4, **kwargs)
    for t in range(4):
        add_scalar(buf, [t], [t], [t + 1])
    return buf


def test_prioritized_sampling_proportions_and_is_weights():
    buf = four_transitions(alpha=1.0, beta=0.5)
    buf.update_priorities(torch.arange(4), torch.tensor([1.0, -2.0, 3.0, 4.0]))  # sign is ignored
    indices = torch.cat([buf.sample(10).indices for _ in range(1000)])
    freq = torch.bincount(indices, minlength=4).float() / indices.numel()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.01)
    batch = buf.sample(1000)
    # Hand formula: P(i) = p_i / sum p, w = (N * P(i))**-beta normalised by the batch max.
    p = torch.tensor([1.0, 2.0, 3.0, 4.0]) + buf.eps
    w = (4 * p / p.sum()) ** -0.5
    expected = w / w.max()  # index 0 (the smallest P) is in the batch
    assert torch.allclose(batch.weights, expected[batch.indices], rtol=1e-5)
    assert torch.allclose(expected, torch.tensor([1.0, 2 ** -0.5, 3 ** -0.5, 0.5]), rtol=1e-5)
    assert torch.equal(batch.obs[:, 0].long(), batch.indices)


def test_prioritized_beta_is_annealed_by_attribute():
    buf = four_transitions(alpha=1.0, beta=0.5)
    buf.update_priorities(torch.arange(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    buf.beta = 0.0
    assert torch.equal(buf.sample(64).weights, torch.ones(64))


def test_update_priorities_batched_with_duplicates_and_max_for_new():
    buf = scalar_buffer(PrioritizedReplayBuffer, capacity=8, alpha=0.5, eps=1e-6)
    for t in range(3):
        add_scalar(buf, [t], [t], [t + 1])
    assert buf._tree.get(torch.arange(8)).tolist() == [1.0, 1.0, 1.0, 0, 0, 0, 0, 0]  # initial max is 1
    buf.update_priorities(torch.tensor([0, 0, 2]), torch.tensor([5.0, 9.0, -3.0]))
    stored = buf._tree.get(torch.arange(3))
    assert torch.allclose(stored, torch.tensor([9 + 1e-6, 1.0, 3 + 1e-6]) ** 0.5)
    assert torch.allclose(buf._tree.total(), stored.sum())
    add_scalar(buf, [3], [3], [4])
    assert torch.allclose(buf._tree.get(torch.tensor([3])), torch.tensor([(9 + 1e-6) ** 0.5]))
    buf.update_priorities(torch.tensor([3]), torch.tensor([0.0]))  # max never decreases
    add_scalar(buf, [4], [4], [5])
    assert torch.allclose(buf._tree.get(torch.tensor([4])), torch.tensor([(9 + 1e-6) ** 0.5]))


def test_prioritized_optimize_memory_usage_keeps_newest_row_out():
    buf = scalar_buffer(PrioritizedReplayBuffer, capacity=100, optimize_memory_usage=True)
    add_scalar(buf, [0], [1], [1])
    assert buf._tree.total().item() == 0.0
    add_scalar(buf, [1], [1], [2])
    assert buf._tree.get(torch.arange(3)).tolist() == [1.0, 0.0, 0.0]
    buf.update_priorities(torch.tensor([1]), torch.tensor([5.0]))  # not sampleable: stays 0
    assert buf._tree.get(torch.tensor([1])).item() == 0.0
    for t in range(2, 70):
        add_scalar(buf, [t], [1], [1000 + t], [True])
    # Steps 2..5 lost their side entries: drawn at weight 0, then dropped from sampling.
    first = buf.sample(4096)
    assert torch.equal(first.weights == 0, (first.indices >= 2) & (first.indices <= 5))
    assert buf._tree.get(torch.arange(2, 6)).tolist() == [0.0] * 4
    again = buf.sample(4096).indices
    assert not ((again >= 2) & (again <= 5)).any()


# -------------------------------------------------------------- checkpoints


def roundtrip(buf, fresh):
    blob = io.BytesIO()
    torch.save(buf.state_dict(), blob)
    blob.seek(0)
    fresh.load_state_dict(torch.load(blob))
    return fresh


@pytest.mark.parametrize("cls, kwargs", [
    (ReplayBuffer, {"n_step": 3}),
    (ReplayBuffer, {"optimize_memory_usage": True}),
    (PrioritizedReplayBuffer, {"n_step": 2}),
    (PrioritizedReplayBuffer, {"optimize_memory_usage": True}),
])
def test_state_dict_round_trip_reproduces_samples(cls, kwargs):
    def make():
        return cls(12, 3, (2, 3), torch.uint8, (), torch.long, **kwargs)

    data = image_steps(3, 9, seed=7)
    buf = make()
    for step in data[:6]:
        buf.add(*step)
    if cls is PrioritizedReplayBuffer:
        buf.update_priorities(torch.tensor([0, 4, 7]), torch.tensor([3.0, 0.5, 2.0]))
    other = roundtrip(buf, make())
    for b in (buf, other):  # keep going after the restore: the write position must match too
        for step in data[6:]:
            b.add(*step)
    torch.manual_seed(123)
    a = buf.sample(64)
    torch.manual_seed(123)
    b = other.sample(64)
    for name in ReplayBatch._fields:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_a_checkpoint_keeps_only_the_rows_written_so_far():
    buf = ReplayBuffer(1_000, 2, (2, 3), torch.uint8, (), torch.long)
    for step in image_steps(2, 7, seed=1):
        buf.add(*step)
    state = buf.state_dict()
    assert state["obs"].shape == (7, 2, 2, 3) and state["next_obs"].shape[0] == 7 and state["rewards"].shape == (7, 2)
    old_format = {**state, **{k: v for k, v in buf._tensors().items()}}  # every row, as checkpoints kept before
    del old_format["capacity_per_env"]
    for saved in (state, old_format):
        restored = ReplayBuffer(1_000, 2, (2, 3), torch.uint8, (), torch.long)
        restored.load_state_dict(saved)
        assert len(restored) == len(buf) and torch.equal(restored._obs[:7], buf._obs[:7])


def test_load_state_dict_rejects_other_shapes():
    buf = scalar_buffer(capacity=10)
    with pytest.raises(ValueError, match="capacity_per_env = 20, this one has 10"):
        buf.load_state_dict(scalar_buffer(capacity=20).state_dict())
    with pytest.raises(ValueError, match="keys"):
        buf.load_state_dict(scalar_buffer(capacity=10, optimize_memory_usage=True).state_dict())


# --------------------------------------------------------------------- GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("optimize", [False, True])
def test_hot_path_has_no_host_sync_on_cuda(optimize):
    dev = torch.device("cuda")
    buf = PrioritizedReplayBuffer(64, 4, (2, 3), torch.uint8, (), torch.long, device=dev, n_step=3,
                                  optimize_memory_usage=optimize)
    steps = [tuple(x.to(dev) for x in step) for step in image_steps(4, 20, seed=0)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in steps:
            buf.add(*step)
        batch = buf.sample(32)
        buf.update_priorities(batch.indices, batch.rewards)
        ReplayBuffer.sample(buf, 32)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert batch.obs.device.type == "cuda"
