"""rlcore.config: configs built from flat names, validated, described; parts."""

from __future__ import annotations

import dataclasses

import pytest

from agents import A2CConfig, DQNConfig, PPOConfig, REINFORCEConfig
from agents.base import AgentConfig, setting_groups
from envs import TEXT_ENV_ID
from envs.text import TextEnvConfig
from rlcore.config import ConfigError, build_config, field_docs, flat_fields, flatten, parts, split_settings
from rlcore.kl import KLConfig
from rlcore.lm import LMPolicyConfig


def test_build_config_unknown_name_lists_valid_names_and_suggests():
    with pytest.raises(ConfigError) as err:
        build_config(DQNConfig, {"learning_rat": 1e-3})
    message = str(err.value)
    assert "'learning_rat'" in message and "did you mean 'learning_rate'" in message
    assert all(f.name in message for f in dataclasses.fields(DQNConfig))
    with pytest.raises(ConfigError, match="did you mean 'gamma'"):
        build_config(DQNConfig, {}, presets={"gamm": 0.9})  # a typo in a preset fails too


def test_build_config_overrides_win_over_presets():
    cfg = build_config(DQNConfig, {"gamma": 0.9}, presets={"gamma": 0.5, "batch_size": 8})
    assert cfg.gamma == 0.9 and cfg.batch_size == 8


def test_config_value_error_names_field_and_constraint():
    with pytest.raises(ConfigError, match=r"DQNConfig.gamma = 2 is invalid: must be in \(0, 1\]"):
        DQNConfig(gamma=2)


def test_every_dqn_field_is_documented():
    docs = field_docs(DQNConfig)
    missing = [f.name for f in dataclasses.fields(DQNConfig) if not docs.get(f.name, "").strip()]
    assert not missing, f"fields without a docstring: {missing}"
    assert docs["learning_rate"] == "Adam step size (annealed linearly to 0 when anneal_lr)."


# ----- parts and groups ----------------------------------------------------------------------
def test_flat_names_of_a_part_build_it_and_flatten_gives_them_back():
    cfg = build_config(PPOConfig, {"kl_coef": 0.2, "n_epochs": 2})
    assert cfg.kl == KLConfig(coef=0.2) and cfg.n_epochs == 2
    assert build_config(PPOConfig, {}).kl is None  # a part that defaults to None stays off until named
    flat = flatten(cfg)
    assert flat["kl_coef"] == 0.2 and flat["kl_penalty"] == "reward" and "kl" not in flat
    assert build_config(PPOConfig, flat) == cfg
    assert "kl_coef" not in flatten(build_config(PPOConfig, {}))


def test_a_whole_part_replaces_what_flat_names_said_and_none_turns_it_off():
    cfg = build_config(PPOConfig, {"kl": {"coef": 0.3}}, presets={"kl_coef": 0.05, "kl_horizon": 5})
    assert cfg.kl == KLConfig(coef=0.3)  # the preset's horizon went with its part
    cfg = build_config(PPOConfig, {"kl": KLConfig(target=1.0), "kl_coef": 0.1})
    assert cfg.kl == KLConfig(coef=0.1, target=1.0)
    assert build_config(PPOConfig, {"kl": None}, presets={"kl_coef": 0.05}).kl is None


def test_a_bad_value_in_a_part_names_the_part_field():
    with pytest.raises(ConfigError, match=r"KLConfig.estimator = 'k1' is invalid: must be k2 or k3 with kl_penalty=loss"):
        build_config(PPOConfig, {"kl_penalty": "loss"})
    with pytest.raises(ConfigError, match="did you mean 'kl_coef'"):
        build_config(PPOConfig, {"kl_cof": 0.1})


def test_split_settings_sends_each_flat_name_to_its_owner():
    groups = setting_groups(PPOConfig, TEXT_ENV_ID)
    split = split_settings(groups, {"model": "m", "kl_coef": 0.1, "group_size": 4, "n_epochs": 2, "kl": None}, "PPO")
    assert split == {"agent": {"kl_coef": 0.1, "n_epochs": 2, "kl": None}, "env": {"group_size": 4},
                     "policy": {"model": "m"}}
    assert set(groups) == {"agent", "env", "policy"} and groups["env"] is TextEnvConfig
    assert groups["policy"] is LMPolicyConfig and setting_groups(PPOConfig, "CartPole-v1") == {"agent": PPOConfig}
    with pytest.raises(ConfigError, match=r"Unknown hyperparameter 'modle' \(did you mean 'model'\?\) for PPO on Text-v0"):
        split_settings(groups, {"modle": "m"}, "PPO on Text-v0")
    with pytest.raises(ConfigError, match="Unknown hyperparameter 'model'"):  # outside Text-v0 there is no model
        split_settings(setting_groups(PPOConfig, "CartPole-v1"), {"model": "m"}, "PPO on CartPole-v1")


@pytest.mark.parametrize("cls", [DQNConfig, PPOConfig, A2CConfig, REINFORCEConfig, TextEnvConfig, LMPolicyConfig])
def test_every_setting_is_documented_parts_included(cls):
    docs = field_docs(cls)
    missing = [name for name in flat_fields(cls) if not docs.get(name, "").strip()]
    assert not missing, f"settings without a docstring: {missing}"
    if cls is PPOConfig:
        assert docs["kl_coef"].startswith("Weight of the KL penalty") and parts(cls) == {"kl": KLConfig}


def test_shared_fields_are_declared_once_and_redeclared_only_for_their_defaults():
    shared = {f.name for f in dataclasses.fields(AgentConfig)}
    assert {"seed", "device", "num_envs", "gamma", "learning_rate", "max_grad_norm", "hidden_sizes"} <= shared
    for cls in (DQNConfig, PPOConfig, A2CConfig, REINFORCEConfig):
        assert shared <= {f.name for f in dataclasses.fields(cls)}
    assert DQNConfig().max_grad_norm == 10.0 and PPOConfig().max_grad_norm == 0.5
    assert field_docs(DQNConfig)["max_grad_norm"] == field_docs(AgentConfig)["max_grad_norm"]
