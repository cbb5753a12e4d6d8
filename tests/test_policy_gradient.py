"""PPO, A2C and REINFORCE: losses, determinism, resume, action spaces, bad input, learning."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import A2C, PPO, REINFORCE
from agents.base import check_action_space
from rlcore import evaluate
from rlcore.checkpoint import CHECKPOINT_NAME
from rlcore.config import ConfigError
from rlcore.rollout import RolloutBatch

AGENTS = {
    "ppo": (PPO, dict(num_envs=4, n_steps=32, batch_size=64, n_epochs=2, log_interval=128, checkpoint_interval=0)),
    "a2c": (A2C, dict(num_envs=4, n_steps=8, log_interval=128, checkpoint_interval=0)),
    "reinforce": (REINFORCE, dict(num_envs=4, n_steps=32, log_interval=128, checkpoint_interval=0)),
}


def _iterate(agent: PPO) -> dict[str, torch.Tensor]:
    """One PPO iteration as learn runs it: collect a round (advantages included), update on it."""
    agent.start_round(agent.collect_round(agent.policy, agent.buffer, agent.obs))
    return agent._update(agent.buffer, agent.global_step, None)


def _params(agent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.policy.parameters()]


@pytest.mark.parametrize("algo", sorted(AGENTS))
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_each_agent_runs_on_discrete_and_continuous_actions(algo, env_id, tmp_path: Path):
    cls, small = AGENTS[algo]
    agent = cls(env_id, **small, seed=0).learn(512, run_dir=tmp_path, progress=False)
    assert agent.global_step >= 512 and agent.num_updates >= 1
    action = agent.predict(torch.zeros(3, *agent.env.single_observation_space.shape))
    space = agent.env.single_action_space
    if isinstance(space, gym.spaces.Box):
        assert action.shape == (3, *space.shape)
        assert (action >= torch.as_tensor(space.low)).all() and (action <= torch.as_tensor(space.high)).all()
    else:
        assert action.shape == (3,)


@pytest.mark.parametrize("algo", sorted(AGENTS))
def test_seeded_runs_are_identical(algo, tmp_path: Path):
    cls, small = AGENTS[algo]
    a = cls("CartPole-v1", **small, seed=5).learn(512, run_dir=tmp_path / "a", progress=False)
    b = cls("CartPole-v1", **small, seed=5).learn(512, run_dir=tmp_path / "b", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))


@pytest.mark.parametrize("algo", sorted(AGENTS))
@pytest.mark.parametrize("backend", ["torch", "gymnasium"])
def test_what_collection_leaves_behind_works_outside_inference_mode(algo, backend, tmp_path: Path):
    """`collect` runs under torch.inference_mode (less per-op overhead than no_grad). Tensors made
    there must not be ones the agent or its environment later changes in place, or the update
    saves for backward, outside it: step and reset the training environment directly, evaluate on
    it, train on, save and resume, with normalised observations and rewards."""
    cls, small = AGENTS[algo]
    agent = cls("Pendulum-v1", **small, seed=0, backend=backend, normalize_obs=True, normalize_reward=True)
    agent.learn(256, run_dir=tmp_path / "a", progress=False)
    env = agent.env
    assert not torch.is_inference_mode_enabled()
    env.reset()
    env.step(torch.zeros(env.num_envs, 1))
    evaluate(agent, env, episodes=2, seed=1)
    before = _params(agent)
    agent.learn(512, run_dir=tmp_path / "a", progress=False)
    assert any(not torch.equal(x, y) for x, y in zip(before, _params(agent)))  # the update still trains
    resumed = cls.load(agent.save(tmp_path / "model.pt"))
    resumed.learn(768, run_dir=tmp_path / "b", progress=False)


@pytest.mark.parametrize("algo", sorted(AGENTS))
@pytest.mark.parametrize("where", ["reward", "obs", "final_obs"])
def test_nan_from_the_environment_stops_naming_step_and_copy(algo, where, tmp_path: Path):
    """The guard checks each rollout once it is in the buffer; the error names the environment step
    at which the bad value came back (4 copies: vector step k is environment step 4k) and the copy,
    also where it is only the final observation of an episode a time limit cut."""
    cls, small = AGENTS[algo]
    agent = cls("CartPole-v1", **{**small, "checkpoint_interval": 128}, seed=0)
    inner = agent.env.unwrapped
    original, calls = inner.step, [0]

    def step(action):  # from vector step 70 (environment step 280) on, copy 2's reward or observation is NaN
        calls[0] += 1
        obs, reward, term, trunc, info = original(action)
        if calls[0] >= 70 and where == "final_obs":
            trunc, final = trunc.clone(), info["final_obs"].clone()
            trunc[2], final[2, 0] = True, float("inf")
            info = {**info, "final_obs": final}
        elif calls[0] >= 70:
            obs, reward = obs.clone(), reward.clone()
            (reward if where == "reward" else obs[:, 1])[2] = float("nan")
        return obs, reward, term, trunc, info

    inner.step = step
    with pytest.raises(FloatingPointError, match=r"NaN/inf observation or reward at environment step 280 \(copy 2\)"):
        agent.learn(2_048, run_dir=tmp_path, progress=False)
    good = cls.load(tmp_path / CHECKPOINT_NAME)
    assert good.global_step <= 280 and all(torch.isfinite(p).all() for p in good.policy.parameters())


def test_a_nan_before_the_first_checkpoint_says_there_is_none(tmp_path: Path):
    agent = PPO("CartPole-v1", **{**AGENTS["ppo"][1], "checkpoint_interval": 0}, seed=0)
    inner, original = agent.env.unwrapped, agent.env.unwrapped.step

    def step(action):
        obs, reward, term, trunc, info = original(action)
        return obs, torch.full_like(reward, float("nan")), term, trunc, info

    inner.step = step
    with pytest.raises(FloatingPointError, match="at environment step 4 .*no checkpoint had been saved yet"):
        agent.learn(2_048, run_dir=tmp_path, progress=False)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize("algo", sorted(AGENTS))
def test_interrupted_and_resumed_run_matches_uninterrupted(algo, tmp_path: Path):
    cls, small = AGENTS[algo]
    config = {**small, "seed": 2, "normalize_obs": True}
    straight = cls("CartPole-v1", **config).learn(1_024, run_dir=tmp_path / "a", progress=False)

    interrupted = cls("CartPole-v1", **config)
    _interrupt_at_step(interrupted, 70)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(1_024, run_dir=tmp_path / "b", progress=False)
    resumed = cls.load(tmp_path / "b" / CHECKPOINT_NAME)
    assert 0 < resumed.global_step < 1_024
    resumed.learn(1_024, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_params(straight), _params(resumed)))


def _interrupt_at_step(agent, n: int) -> None:
    """Send Ctrl-C (SIGINT) from inside the environment's n-th step."""
    inner, calls = agent.env.unwrapped, [0]
    original = inner.step

    def step(action):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(action)

    inner.step = step


def test_async_rollout_lags_one_update_is_reproducible_and_resumes_exactly(tmp_path: Path):
    """async_rollout collects round k + 1 with the weights from before update k: a seeded run is
    reproducible whatever the threads' timing, differs from the sequential run (the lag is real),
    and a run interrupted mid-collection resumes to the uninterrupted run's exact weights."""
    config = {**AGENTS["ppo"][1], "seed": 3, "normalize_obs": True}
    a = PPO("CartPole-v1", **config, async_rollout=True).learn(1_024, run_dir=tmp_path / "a", progress=False)
    b = PPO("CartPole-v1", **config, async_rollout=True).learn(1_024, run_dir=tmp_path / "b", progress=False)
    sequential = PPO("CartPole-v1", **config).learn(1_024, run_dir=tmp_path / "c", progress=False)
    assert a.global_step == b.global_step == sequential.global_step == 1_024
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))
    assert not all(torch.equal(x, y) for x, y in zip(_params(a), _params(sequential)))

    interrupted = PPO("CartPole-v1", **config, async_rollout=True)
    _interrupt_at_step(interrupted, 70)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(1_024, run_dir=tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="settings it was saved with"):
        PPO.load(tmp_path / "d" / CHECKPOINT_NAME, async_rollout=False)
    resumed = PPO.load(tmp_path / "d" / CHECKPOINT_NAME)
    assert resumed.rollouts.pending and 0 < resumed.global_step < 1_024  # a collected round waits in the checkpoint
    resumed.learn(1_024, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(resumed)))
    with pytest.raises(ValueError, match="compile = True is not supported with async_rollout"):
        PPO("CartPole-v1", async_rollout=True, compile=True)


def test_a_learner_process_trains_as_the_thread_does_and_its_optimiser_state_reaches_checkpoints(tmp_path: Path):
    """On a CPU async_rollout updates in a forked process: the same weights and optimiser state as
    updating in this process (the collector in a thread), and a checkpoint taken mid-run holds the
    child's optimiser state (resuming it ends at the same weights)."""
    config = {**AGENTS["ppo"][1], "seed": 5, "async_rollout": True, "checkpoint_interval": 512}
    thread = PPO("CartPole-v1", **config)
    thread.rollouts.use_process = False
    thread.learn(1_024, run_dir=tmp_path / "thread", progress=False)
    process = PPO("CartPole-v1", **config)
    process.rollouts.use_process = True
    save = process.save

    def keep_mid_run_checkpoint(path, include_buffer=False):
        saved = save(path, include_buffer)
        if process.global_step == 512 and Path(path).name == CHECKPOINT_NAME:
            shutil.copy(saved, tmp_path / "mid_run.pt")
        return saved

    process.save = keep_mid_run_checkpoint
    process.learn(1_024, run_dir=tmp_path / "process", progress=False)
    assert process.num_updates == thread.num_updates == 8
    assert all(torch.equal(x, y) for x, y in zip(_params(thread), _params(process)))

    def moments(agent):
        return [t for s in agent.optimizer.state_dict()["state"].values() for t in (s["exp_avg"], s["exp_avg_sq"])]

    assert moments(process) and all(torch.equal(a, b) for a, b in zip(moments(process), moments(thread)))
    resumed = PPO.load(tmp_path / "mid_run.pt")
    assert resumed.global_step == 512 and resumed.rollouts.pending
    resumed.learn(1_024, run_dir=tmp_path / "resumed", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_params(process), _params(resumed)))


def test_evaluation_uses_frozen_copies_of_the_training_observation_statistics(tmp_path: Path):
    from envs import ObservationNormalization

    agent = PPO("CartPole-v1", **AGENTS["ppo"][1], normalize_obs=True, seed=0)
    agent.learn(512, run_dir=tmp_path, progress=False, eval_every=256, eval_episodes=3)  # 3 eval copies, 4 training
    train_rms = agent.env.find(ObservationNormalization).obs_rms
    eval_env = agent.make_eval_env(num_envs=3, seed=0)
    eval_norm = eval_env.find(ObservationNormalization)
    assert not eval_norm.training and torch.equal(eval_norm.obs_rms.mean, train_rms.mean)
    eval_env.reset()
    eval_env.step(torch.zeros(3, dtype=torch.long))
    assert torch.equal(eval_norm.obs_rms.mean, train_rms.mean)  # frozen: evaluation does not move them


def test_bad_evaluation_settings_are_refused_before_the_run_directory_exists(tmp_path: Path):
    agent = PPO("CartPole-v1", **AGENTS["ppo"][1])
    with pytest.raises(ValueError, match="stop_at_return needs eval_every > 0"):
        agent.learn(512, run_dir=tmp_path / "run", progress=False, stop_at_return=475)
    assert not (tmp_path / "run").exists()


def test_ppo_clipped_surrogate_and_statistics_by_hand():
    agent = PPO("CartPole-v1", num_envs=1, n_steps=4, batch_size=4, normalize_advantage=False)
    obs = torch.zeros(4, 4)
    actions = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        logprob, _, value = agent.policy.evaluate_actions(obs, actions)
    # Old log-probs chosen so the ratios are 1.5, 0.5, 1.1, 1.0 exactly.
    ratio = torch.tensor([1.5, 0.5, 1.1, 1.0])
    advantages = torch.tensor([2.0, 1.0, -1.0, 3.0])
    batch = RolloutBatch(obs=obs, actions=actions, logprobs=logprob - ratio.log(), values=value,
                         advantages=advantages, returns=value)
    loss, stats = agent._loss(batch, clip_range=0.2, kl_coef=None)
    # max(-A r, -A clip(r)): 1.5 -> -2*1.2; 0.5 -> -1*0.5 (clip to 0.8 would be smaller loss); 1.1 -> 1.1; 1.0 -> -3
    expected = torch.tensor([-2.0 * 1.2, -1.0 * 0.5, 1.0 * 1.1, -3.0]).mean()
    assert torch.allclose(stats["losses/policy_loss"], expected, atol=1e-5)
    assert torch.allclose(stats["losses/clipfrac"], torch.tensor(0.5))  # 1.5 and 0.5 lie outside [0.8, 1.2]
    kl = ((ratio - 1) - ratio.log()).mean()
    assert torch.allclose(stats["losses/approx_kl"], kl, atol=1e-5)
    assert torch.allclose(stats["losses/value_loss"], torch.tensor(0.0))


def test_ppo_value_clipping_takes_the_larger_loss():
    agent = PPO("CartPole-v1", num_envs=1, n_steps=2, batch_size=2, clip_range_vf=0.1, normalize_advantage=False)
    obs = torch.zeros(2, 4)
    actions = torch.tensor([0, 1])
    with torch.no_grad():
        logprob, _, value = agent.policy.evaluate_actions(obs, actions)
    old_values = value - torch.tensor([0.5, 0.0])  # the first moved 0.5, clipped back to 0.1
    returns = value + 1.0
    batch = RolloutBatch(obs=obs, actions=actions, logprobs=logprob, values=old_values,
                         advantages=torch.zeros(2), returns=returns)
    _, stats = agent._loss(batch, clip_range=0.2, kl_coef=None)
    # unclipped errors: 1.0, 1.0; clipped: first is old+0.1 -> error 1.4; second 1.0. max -> 1.4^2, 1.0
    assert torch.allclose(stats["losses/value_loss"], torch.tensor(0.5 * (1.4**2 + 1.0) / 2), atol=1e-5)


def test_inconsistent_rollout_settings_are_refused_naming_both_values():
    too_big = r"batch_size = 512 is invalid: must be <= the rollout size num_envs \* n_steps = 2 \* 128 = 256"
    with pytest.raises(ConfigError, match=too_big):
        PPO("CartPole-v1", num_envs=2, n_steps=128, batch_size=512)
    with pytest.raises(ConfigError, match=r"batch_size = 100 is invalid: must be a divisor of the rollout size .* = 256"):
        PPO("CartPole-v1", num_envs=2, n_steps=128, batch_size=100)


def test_unsupported_action_space_names_space_and_agents():
    expected = r"PPO needs a Discrete or Box or MultiDiscrete action space, but the environment has MultiBinary"
    with pytest.raises(ValueError, match=expected):
        check_action_space("ppo", gym.spaces.MultiBinary(3), (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete))
    with pytest.raises(ValueError, match=r"Agents that fit: a2c, ddpg, ppo, reinforce, sac, td3\."):
        check_action_space("dqn", gym.spaces.Box(-1, 1, (2,)), (gym.spaces.Discrete,))


def test_ppo_solves_cartpole(tmp_path: Path):
    """A small learning test: the preset, stopped at a 20-episode greedy mean of 475."""
    agent = PPO("CartPole-v1", seed=0).learn(100_000, run_dir=tmp_path, progress=False, eval_every=10_000,
                                             stop_at_return=475)
    assert agent.summary.get("steps_to_threshold") is not None, agent.summary
    assert evaluate(agent, "CartPole-v1", episodes=10, seed=7)[0] >= 400


def test_a2c_learns_cartpole(tmp_path: Path):
    agent = A2C("CartPole-v1", seed=0).learn(40_000, run_dir=tmp_path, progress=False)
    assert evaluate(agent, "CartPole-v1", episodes=10, seed=7)[0] >= 150


@pytest.mark.parametrize("space, hidden, activation", [
    (gym.spaces.Discrete(3), (64, 64), "tanh"),
    (gym.spaces.Box(-2.0, 2.0, (2,)), (32, 16, 8), "relu"),
    (gym.spaces.MultiDiscrete([3, 2]), (16,), "tanh"),
])
def test_side_by_side_act_is_act(space, hidden, activation):
    """The rollout's acting step with both MLP torsos as one wider MLP samples the action `act` samples
    from the same RNG state, with its log-probability and value up to float rounding; it copies the
    weights once, so a later weight change needs a new one."""
    from rlcore.policies import ActorCritic, side_by_side_act

    torch.manual_seed(0)
    policy = ActorCritic(gym.spaces.Box(-1.0, 1.0, (5,)), space, hidden, activation)
    with torch.no_grad():
        for p in policy.parameters():  # non-zero biases and heads, so every term counts
            p.add_(0.1 * torch.randn_like(p))
        obs = torch.randn(64, 5)
        act = side_by_side_act(policy)
        torch.manual_seed(1)
        expected = policy.act(obs)
        torch.manual_seed(1)
        got = act(obs)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        next(policy.critic_torso.parameters()).add_(1.0)
        assert not torch.allclose(policy.act(obs)[2], got[2])  # the copy is the weights of its making
        torch.testing.assert_close(side_by_side_act(policy)(obs)[2], policy.act(obs)[2], atol=1e-5, rtol=1e-5)


def test_side_by_side_act_leaves_other_policies_alone():
    from rlcore.ensemble import stack_modules
    from rlcore.policies import ActorCritic, side_by_side_act

    vector, discrete = gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2)
    assert side_by_side_act(ActorCritic(gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8"), discrete)) is None
    assert side_by_side_act(stack_modules([ActorCritic(vector, discrete) for _ in range(2)])) is None
    assert side_by_side_act(ActorCritic(vector, discrete, hidden_sizes=())) is None
    hooked = ActorCritic(vector, discrete)
    assert side_by_side_act(hooked) is not None
    hooked.critic_torso.net[0].register_forward_hook(lambda module, args, out: None)  # it must keep running
    assert side_by_side_act(hooked) is None


def test_has_hooks_sees_every_kind_of_module_hook():
    from rlcore.nets import has_hooks

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh())
    assert not has_hooks(net)
    for register in (lambda: net[0].register_forward_hook(lambda m, a, o: None),
                     lambda: net[1].register_forward_pre_hook(lambda m, a: None),
                     lambda: net.register_full_backward_hook(lambda m, gi, go: None),
                     lambda: torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: None)):
        handle = register()
        assert has_hooks(net)
        handle.remove()
        assert not has_hooks(net)


def _has_cuda_or_cxx(device: str) -> bool:
    import shutil

    return torch.cuda.is_available() if device == "cuda" else bool(shutil.which("c++") or shutil.which("g++"))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_compiled_acting_step_samples_from_the_policy(device, tmp_path: Path):
    """compile=True (CUDA graphs on a GPU) must store the log-probabilities and values the eager
    policy gives the stored observations and actions, and train as usual."""
    if not _has_cuda_or_cxx(device):
        pytest.skip(f"torch.compile on {device} needs {'CUDA' if device == 'cuda' else 'a C++ compiler'}")
    agent = PPO("CartPole-v1", backend="torch", device=device, compile=True, num_envs=64, n_steps=8,
                batch_size=128, checkpoint_interval=0)
    agent.obs, _ = agent.env.reset(seed=0)
    for _ in range(3):  # several replays of the compiled step, each overwriting the last one's outputs
        agent.start_round(agent.collect_round(agent.policy, agent.buffer, agent.obs))
        buf = agent.buffer
        with torch.no_grad():
            logprob, _, value = agent.policy.evaluate_actions(buf.obs.flatten(0, 1), buf.actions.flatten(0, 1))
        torch.testing.assert_close(logprob, buf.logprobs.flatten(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(value, buf.values.flatten(), atol=1e-5, rtol=1e-5)
        assert buf.actions.unique().tolist() == [0, 1]
        agent._update(buf, agent.global_step, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_graphed_update_on_cuda_matches_the_eager_one(env_id):
    """cuda_graph=True (the default) on CUDA replays each minibatch's gather, loss, backward pass and clipping as one
    CUDA graph: learning from the same rollouts in the same order, the weights and statistics after
    every update are the eager update's (clip range annealed, so its tensor input changes), and
    replays never sync with the host."""
    kw = dict(backend="torch", device="cuda", num_envs=64, n_steps=16, batch_size=256, n_epochs=2,
              anneal_clip_range=True, checkpoint_interval=0, seed=0)
    eager, graphed = PPO(env_id, cuda_graph=False, **kw), PPO(env_id, **kw)
    graphed.policy.load_state_dict(eager.policy.state_dict())
    eager.total_steps = graphed.total_steps = 5_000
    eager.obs, _ = eager.env.reset(seed=0)
    for i in range(3):
        eager.start_round(eager.collect_round(eager.policy, eager.buffer, eager.obs))  # both learn from this rollout
        torch.manual_seed(i)
        expected = eager._update(eager.buffer, eager.global_step, None)
        torch.manual_seed(i)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error" if i else "default")  # the first update captures the graphs
        try:
            got = graphed._update(eager.buffer, eager.global_step, None)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert graphed._graphed is not None and eager._graphed is None
        for a, b in zip(eager.policy.parameters(), graphed.policy.parameters(), strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
        for key in ("losses/policy_loss", "losses/value_loss", "losses/approx_kl", "losses/clipfrac"):
            torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cuda_graph", [True, False])
def test_ppo_iteration_on_cuda_never_syncs_with_the_host(cuda_graph):
    """Collection on the torch-native environment and the whole update (replayed or eager) run with
    CUDA's sync debug mode set to error: no .item(), no host copy, no data-dependent shape."""
    agent = PPO("CartPole-v1", backend="torch", device="cuda", num_envs=256, n_steps=16, batch_size=1024,
                checkpoint_interval=0, cuda_graph=cuda_graph)
    agent.total_steps = 10**9
    agent.obs, _ = agent.env.reset(seed=0)
    _iterate(agent)  # warm-up: lazy CUDA initialisation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            stats = _iterate(agent)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stats["losses/value_loss"].is_cuda and agent.buffer.obs.is_cuda


def test_predict_refuses_a_wrong_shape_or_a_nan_observation():
    agent = PPO("CartPole-v1", **AGENTS["ppo"][1])
    with pytest.raises(ValueError, match=r"observation shape \(3,\) is neither one observation \(4,\) nor a batch"):
        agent.predict(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        agent.predict(np.array([0.0, float("nan"), 0.0, 0.0], dtype=np.float32))
    assert agent.predict(np.zeros((5, 4), dtype=np.float32)).shape == (5,)


def test_a_checkpoint_without_its_parts_is_refused_by_name(tmp_path: Path):
    from rlcore.checkpoint import CheckpointError, save_checkpoint

    save_checkpoint(tmp_path / "part.pt", {"algo": "ppo", "env_id": "CartPole-v1"})
    with pytest.raises(CheckpointError, match="lacks config, state, counters, rng, env_state"):
        PPO.load(tmp_path / "part.pt")
