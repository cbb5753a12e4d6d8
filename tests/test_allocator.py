"""rlcore.allocator: freed memory reused instead of returned to the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_ALLOCATION_ROUNDS = """
import resource, sys, torch
from rlcore.allocator import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else None
counts = []
for _ in range(6):  # a step's pattern: twenty 1 MB tensors alive at once, then all freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tensors = [torch.ones(1 << 18) for _ in range(20)]
    del tensors
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, counts[-3:])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")


def test_freed_memory_is_reused_without_page_faults():
    """Each process starts with glibc's defaults, which here hand the freed 20 MB back to the kernel
    every round (thousands of page faults a round); after reuse_freed_memory() the rounds reuse it."""
    def run(mode: str) -> tuple[str, list[int]]:
        root = Path(__file__).resolve().parents[1]  # a bare environment: no malloc settings, one thread
        out = subprocess.run([sys.executable, "-c", _ALLOCATION_ROUNDS, mode], capture_output=True, text=True,
                             check=True, cwd=root, env={"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1",
                                                        "PYTHONPATH": str(root)})
        applied, counts = out.stdout.split(" ", 1)
        return applied, json.loads(counts)

    applied, reused = run("reuse")
    if applied != "True":
        pytest.skip("not glibc: reuse_freed_memory() leaves malloc as it is")
    assert max(reused) < 100
    _, default = run("default")  # 20 MB of fresh pages is 5120 of them
    if min(default) < 1000:
        pytest.skip(f"this glibc kept the memory by itself ({default} page faults a round): nothing to compare")
