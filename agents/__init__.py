"""Agents, one algorithm per file, and the registry the CLI dispatches on."""

from agents.a2c import A2C, A2CConfig
from agents.dqn import DQN, DQNConfig
from agents.ppo import PPO, PPOConfig
from agents.reinforce import REINFORCE, REINFORCEConfig

AGENTS = {"dqn": DQN, "ppo": PPO, "a2c": A2C, "reinforce": REINFORCE}  # the order `rl list` shows

__all__ = ["AGENTS", "A2C", "A2CConfig", "DQN", "DQNConfig", "PPO", "PPOConfig", "REINFORCE", "REINFORCEConfig"]
