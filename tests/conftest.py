"""Shared test settings."""

import torch

# Tiny tensors gain nothing from a second intra-op thread, and on a 2-core CI machine that is
# busy (async environments, another job) OpenMP spin-waiting made a 1.5 s test take 39 s.
torch.set_num_threads(1)
