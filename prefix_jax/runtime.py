"""Process-level settings, all in one place, applied only where they help.

`keep_freed_memory()`: glibc's malloc keeps freed memory mapped (one arena, never mmap, never
trim). XLA:CPU allocates each execution's large temporary buffer from a worker thread; by
default glibc maps it fresh and unmaps it when the execution ends, so every training step
faults its pages in again. With the setting a step reuses the pages of the step before. Its
price: freed memory is not returned to the OS, and the one arena can fragment so that a
process comes to hold a second temporary buffer. Measurements and the alternative tried
(`glibc.malloc.hugetlb=1`) are in docs/benchmarks.md ("The allocator setting").

It helps only the CPU backend (on an accelerator the temporary buffers live in device memory),
so it is applied only where JAX will compute on the CPU: `JAX_PLATFORMS` starts with `cpu`, or
it is unset and no accelerator plugin (CUDA, ROCm, TPU) is installed. Environment override:
`PREFIX_JAX_KEEP_FREED_MEMORY=0` never applies it, `=1` always does. It must run before JAX
starts its backend (arenas made by threads that already allocated keep their behaviour); the
entry points (`prefix_jax.main`, `experiments.demo`, the benchmarks' JAX workers) call it first
thing. Elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import pkgutil

_INT_MAX = 2**31 - 1  # mallopt takes an int: larger values would wrap
# Each setting: glibc's environment variable for it, its mallopt(3) parameter (malloc.h), value.
_SETTINGS = (("MALLOC_ARENA_MAX", -8, 1), ("MALLOC_MMAP_MAX_", -4, 0),
             ("MALLOC_TRIM_THRESHOLD_", -1, _INT_MAX))


def _accelerator_plugins() -> list[str]:
  """Names of installed JAX PJRT plugins (the `jax_plugins` namespace and entry points) and
  libtpu: what JAX would prefer over the CPU when it finds a device."""
  names = [ep.name for ep in importlib.metadata.entry_points(group="jax_plugins")]
  spec = importlib.util.find_spec("jax_plugins")
  if spec is not None and spec.submodule_search_locations:
    names += [m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)]
  if importlib.util.find_spec("libtpu") is not None:
    names.append("libtpu")
  return names


def cpu_backend_expected() -> bool:
  """True if JAX will compute on the CPU, decided without starting JAX."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return platforms.split(",")[0].strip().lower() == "cpu"
  return not _accelerator_plugins()


def keep_freed_memory() -> bool:
  """Sets glibc's malloc to keep freed memory mapped on CPU backends; True if it was applied."""
  choice = os.environ.get("PREFIX_JAX_KEEP_FREED_MEMORY", "")
  if choice == "0" or (choice != "1" and not cpu_backend_expected()):
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
