"""Agents, one algorithm per file, and the registry the CLI dispatches on."""

from agents.dqn import DQN, DQNConfig

AGENTS = {"dqn": DQN}

__all__ = ["AGENTS", "DQN", "DQNConfig"]
