"""Host memory: let glibc's malloc keep freed memory for reuse, as PyTorch's CUDA caching allocator
does on a GPU.

By default glibc serves each allocation above a threshold (128 KB, raised dynamically as mapped
blocks are freed) with a fresh ``mmap`` and unmaps it on ``free``, and trims free memory at the top
of its heap. A training step allocates and frees the same large tensors (activations, gradients,
logits) every time, so each one comes back as new pages, and every first touch of a page is a page
fault that the kernel also zeroes. With the settings below the pages are reused instead, and a
language model's update on a CPU stops page-faulting after its first few calls (the figures are in
docs/performance.md).

The cost is memory that stays with the process after a peak: up to ``TRIM_THRESHOLD`` of freed heap,
and blocks under ``MMAP_THRESHOLD`` are never unmapped (larger ones still are).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 32 << 20  # glibc's largest: allocations below it come from the heap
TRIM_THRESHOLD = 1 << 30  # free memory the heap keeps before returning any to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")
_applied: bool | None = None


def reuse_freed_memory() -> bool:
    """Apply the settings above, once per process; True when they are in force.

    Nothing changes where the C library is not glibc (macOS, musl), or where the user chose malloc
    settings or another allocator (any of ``GLIBC_TUNABLES``, ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``, ``LD_PRELOAD`` set): theirs stand.
    """
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux") and not any(os.environ.get(name) for name in _USER_SETTINGS):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt  # glibc's; absent elsewhere
            except (OSError, AttributeError):
                return False
            _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
