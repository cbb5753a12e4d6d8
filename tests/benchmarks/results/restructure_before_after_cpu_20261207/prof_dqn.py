import cProfile, pstats, tempfile, torch, io
torch.set_num_threads(1)
from agents import DQN
agent = DQN("CartPole-v1", seed=0, checkpoint_interval=0)
with tempfile.TemporaryDirectory() as d:
    pr = cProfile.Profile(); pr.enable()
    agent.learn(6000, run_dir=d, progress=False)
    pr.disable()
s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18); print(s.getvalue()[:3500])
