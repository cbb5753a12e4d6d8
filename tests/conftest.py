"""Shared test settings."""

import os

import torch

# The language-model tests build their tokenizers and models in memory or under tmp_path; should
# anything still reach for the Hugging Face Hub, this makes it fail instead of downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Tiny tensors gain nothing from a second intra-op thread, and on a 2-core CI machine that is
# busy (async environments, another job) OpenMP spin-waiting made a 1.5 s test take 39 s.
torch.set_num_threads(1)
