"""cProfile of DQN on CartPole for 6000 steps, top rows by internal time."""
import cProfile
import io
import pstats
import tempfile

import torch

from agents import DQN

torch.set_num_threads(1)
agent = DQN("CartPole-v1", seed=0, checkpoint_interval=0)
with tempfile.TemporaryDirectory() as d:
    profile = cProfile.Profile()
    profile.enable()
    agent.learn(6000, run_dir=d, progress=False)
    profile.disable()
out = io.StringIO()
pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(18)
print(out.getvalue()[:3500])
