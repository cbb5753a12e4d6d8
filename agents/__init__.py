"""Agents, one algorithm per file, and the registry the CLI dispatches on."""

from agents.a2c import A2C, A2CConfig
from agents.dqn import DQN, DQNConfig
from agents.ppo import PPO, PPOConfig
from agents.reinforce import REINFORCE, REINFORCEConfig
from agents.sac import SAC, SACConfig
from agents.td3 import DDPG, TD3, DDPGConfig, TD3Config

AGENTS = {"dqn": DQN, "ppo": PPO, "a2c": A2C, "reinforce": REINFORCE, "sac": SAC, "td3": TD3,
          "ddpg": DDPG}  # the order `rl list` shows

__all__ = ["AGENTS", "A2C", "A2CConfig", "DDPG", "DDPGConfig", "DQN", "DQNConfig", "PPO", "PPOConfig", "REINFORCE",
           "REINFORCEConfig", "SAC", "SACConfig", "TD3", "TD3Config"]
