"""Fixed work, timed: PPO (CartPole preset, torch-native), A2C and DQN for a fixed number of steps.

    python fixed_work.py [ppo a2c dqn]   (run from each checkout in turn, PYTHONPATH=<checkout>)
"""
import json
import sys
import tempfile
import time

import torch

from agents import A2C, DQN, PPO

torch.set_num_threads(1)
ONLY = sys.argv[1:] or None
out = {}
for name, make, steps in (("ppo", lambda: PPO("CartPole-v1", seed=0, checkpoint_interval=0), 40_000),
                          ("a2c", lambda: A2C("CartPole-v1", seed=0, checkpoint_interval=0), 40_000),
                          ("dqn", lambda: DQN("CartPole-v1", seed=0, checkpoint_interval=0), 10_000)):
    if ONLY and name not in ONLY:
        continue
    agent = make()
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        agent.learn(steps, run_dir=d, progress=False)
        out[name] = round(time.perf_counter() - start, 3)
print(json.dumps(out))
