"""A plain backward-pass loop timed before and after DQN trains, beside DQN's own time: is the machine the difference?"""
import tempfile
import time

import torch

from agents import DQN

torch.set_num_threads(1)


def kernel_bench() -> float:
    net = torch.nn.Sequential(torch.nn.Linear(4, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 2))
    x = torch.randn(64, 4)
    start = time.perf_counter()
    for _ in range(3000):
        net(x).sum().backward()
    return time.perf_counter() - start


k0 = kernel_bench()
agent = DQN("CartPole-v1", seed=0, checkpoint_interval=0)
with tempfile.TemporaryDirectory() as d:
    start = time.perf_counter()
    agent.learn(6000, run_dir=d, progress=False)
    learn = time.perf_counter() - start
k1 = kernel_bench()
print(f"kernel before learn {k0:.3f}  learn {learn:.3f}  kernel after learn {k1:.3f} threads {torch.get_num_threads()}")
