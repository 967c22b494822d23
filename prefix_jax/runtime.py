"""Process-level settings for long training runs on the CPU.

XLA:CPU allocates each execution's temporary buffer (950 MB for a GPT-2-small prefix step at
batch 8 x 128) with `posix_memalign` from a worker thread. glibc serves a request that large
from a thread arena with a fresh `mmap` and unmaps it when the step ends, so every step faults
in every page again: ~240,000 minor page faults, 0.6-0.8 s of system CPU per step measured on
the 2-core CI machine. `keep_freed_memory()` makes glibc serve every thread from its main
heap, never mmap, and never trim, so a step reuses the pages of the step before (page faults
per step: 0; peak RSS unchanged, but freed memory is not returned to the OS).

Measured since: the one arena fragments. After a few steps (the 2nd to the 5th in 10-step
GPT-2 runs) the process holds a second temporary buffer and then stays there (RSS 1.6 -> 2.3
GB with `train.remat='dots'`): small allocations split the freed buffer, so the next step's
cannot fit in it. glibc's `glibc.malloc.hugetlb=1` tunable (2 MiB pages for what malloc maps,
~1,600 faults per step instead of ~240,000) avoids that and is as fast in a lone process, but
made steps 1.7-2.3x slower in the benchmark, where several processes allocate at
once (fresh huge pages are costly in this VM), so it was not adopted.

It must run before JAX starts its backend (before the first computation): arenas made by
threads that already allocated keep their behaviour. The entry points (`prefix_jax.main`,
the benchmark's JAX workers) call it first thing; `PREFIX_JAX_KEEP_FREED_MEMORY=0` turns it
off. Elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_INT_MAX = 2**31 - 1  # mallopt takes an int: larger values would wrap
# Each setting: glibc's environment variable for it, its mallopt(3) parameter (malloc.h), value.
_SETTINGS = (("MALLOC_ARENA_MAX", -8, 1), ("MALLOC_MMAP_MAX_", -4, 0),
             ("MALLOC_TRIM_THRESHOLD_", -1, _INT_MAX))


def keep_freed_memory() -> bool:
  """Sets glibc's malloc to keep freed memory mapped; True if it was applied."""
  if os.environ.get("PREFIX_JAX_KEEP_FREED_MEMORY", "1") == "0":
    return False
  name = ctypes.util.find_library("c")
  if not name:
    return False
  try:
    libc = ctypes.CDLL(name)
    mallopt = libc.mallopt
  except (OSError, AttributeError):  # not glibc
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  return all(mallopt(param, value) == 1 for _, param, value in _SETTINGS)


def kept_memory_environment() -> dict[str, str]:
  """The same settings as glibc environment variables, for a process that does not call
  `keep_freed_memory` itself (the benchmark gives them to HF PEFT for a like-for-like run)."""
  return {env: str(value) for env, _, value in _SETTINGS}
