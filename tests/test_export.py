"""`rl export` / `PPO.export_pretrained`: a Text-v0 run as a Hugging Face directory, LoRA merged or alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from lm_helpers import save_tiny_lm  # noqa: E402

from agents import PPO  # noqa: E402
from agents.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = save_tiny_lm(tmp_path_factory.mktemp("lm") / "model")
    (d / "prompts.txt").write_text("the movie was\ni thought it\nthis film is\nthe acting\n")
    return d


def _trained(model_dir: Path, run: Path, **kwargs) -> PPO:
    agent = PPO("Text-v0", model=str(model_dir), reward="vader", num_envs=8, n_steps=6, max_new_tokens=6, batch_size=24,
                learning_rate=3e-2, log_interval=48, checkpoint_interval=0, **kwargs)
    return agent.learn(96, run_dir=run, progress=False)


def _our_greedy_tokens(agent: PPO) -> tuple[torch.Tensor, list[list[int]]]:
    """Each copy's prompt (left-padded ids and mask) and the tokens our policy picks greedily, up to EOS."""
    env = agent.env.unwrapped
    obs, _ = env.reset(seed=3)
    prompt = obs[:, :, :env.prompt_len].clone()
    tokens: list[list[int]] = [[] for _ in range(env.num_envs)]
    done = torch.zeros(env.num_envs, dtype=torch.bool)
    for _ in range(env.max_new_tokens):
        with torch.no_grad():
            action = agent.policy.mode(obs)
        for i in range(env.num_envs):
            if not done[i]:
                tokens[i].append(int(action[i]))
        done |= action == env.eos_token_id
        obs, *_ = env.step(action)
    return prompt, tokens


def _hf_greedy_tokens(model, prompt: torch.Tensor, max_new_tokens: int, eos: int) -> list[list[int]]:
    out = []
    for ids, mask in zip(prompt[:, 0], prompt[:, 1]):
        start = int(mask.argmax())  # left padding
        generated = model.generate(ids[start:].unsqueeze(0), attention_mask=mask[start:].unsqueeze(0), do_sample=False,
                                   max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=eos)
        new = generated[0, ids.shape[0] - start:].tolist()
        out.append(new[:new.index(eos) + 1] if eos in new else new)
    return out


@pytest.mark.parametrize("lora_r", [0, 4])
def test_the_exported_model_loads_and_decodes_greedily_as_our_policy_does(model_dir: Path, tmp_path: Path, lora_r: int,
                                                                          capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    agent = _trained(model_dir, tmp_path / "run", lora_r=lora_r)
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
    assert "from_pretrained" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    assert AutoTokenizer.from_pretrained(tmp_path / "hf").eos_token_id == agent.env.unwrapped.eos_token_id
    assert GenerationConfig.from_pretrained(tmp_path / "hf").max_new_tokens == 6
    prompt, ours = _our_greedy_tokens(agent)
    theirs = _hf_greedy_tokens(model, prompt, 6, agent.env.unwrapped.eos_token_id)
    assert ours == theirs
    base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    assert any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), model.state_dict().values()))


def test_a_lora_adapter_exported_alone_reloads_over_the_base_model(model_dir: Path, tmp_path: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    agent = _trained(model_dir, tmp_path / "run", lora_r=4)
    agent.export_pretrained(tmp_path / "adapter", adapter_only=True)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    model = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    prompt, ours = _our_greedy_tokens(agent)
    assert ours == _hf_greedy_tokens(model, prompt, 6, agent.env.unwrapped.eos_token_id)


def test_export_refuses_what_it_cannot_do_in_one_line(model_dir: Path, tmp_path: Path, capsys):
    from agents import DQN

    DQN("CartPole-v1", learning_starts=10, buffer_size=100, batch_size=8, checkpoint_interval=0).learn(
        50, run_dir=tmp_path / "dqn", progress=False)
    assert main(["export", str(tmp_path / "dqn"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "not a language-model run (Text-v0)" in err and err.count("\n") == 1
    assert main(["eval", str(tmp_path / "dqn"), "--samples", str(tmp_path / "s.jsonl")]) == 2
    assert "--samples writes a Text-v0 run's completions" in capsys.readouterr().err
    _trained(model_dir, tmp_path / "run")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    capsys.readouterr()  # what loading the model printed
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert "exists and is not empty" in err and "--overwrite" in err and err.count("\n") == 1
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "full"), "--overwrite"]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "a"), "--adapter"]) == 2
    assert "no adapter to save alone" in capsys.readouterr().err
