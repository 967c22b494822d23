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

`collect_less()`: Python's cyclic garbage collector, tuned for a process that traces and
lowers JAX programs. Tracing allocates container objects by the hundred thousand, so at
Python's default thresholds the collector runs thousands of times in a run's first steps, and
each older-generation pass walks every object the imports made. `collect_less` moves what
exists when it is called (the imported modules, once the entry point's imports are done) to
the collector's permanent generation and raises the youngest generation's threshold; the
older generations keep their defaults, so reference cycles are still freed, only in larger
batches. The entry points call it after their imports. Measured in docs/benchmarks.md ("Where
the suite's CPU goes, and less of it per process").

`use_compilation_cache()`: JAX's persistent compilation cache in one folder
(`paths.compilation_cache_dir`, setting `PREFIX_JAX_COMPILATION_CACHE`, `0` turns it off). A
process that compiles a program some process compiled before (same HLO, XLA flags, jax
version, devices: JAX's cache key) loads that executable instead of compiling it again, so
results do not change. Every program is kept, however short its compile (the tests compile
hundreds of programs of under a second each). The project's folder is bounded (pruned
least-recently-used first, under JAX's file lock). `compilation_cache_environment()` gives the
settings as the environment variables JAX reads at import, for a process and its children.
All processes sharing a folder must agree on the bound: a bounded one reads every entry's access
time file while pruning, which unbounded ones never write, and then fails every write. The test
session runs all its processes unbounded (JAX's pruning rescans the whole folder at every
write) and bounds a kept folder between sessions with `clear_compilation_cache_over`; without
the lock, a process that reads an entry while another writes it gets a warning and compiles the
program itself. `CompileCounter` counts compilations and cache hits.
The two import JAX when called: this module is imported before JAX, whose import would start
threads before `keep_freed_memory` runs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib.metadata
import importlib.util
import os
import pkgutil
import shutil
from pathlib import Path

from prefix_jax import paths

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


# The youngest generation's threshold under `collect_less` (Python's default: 700 allocations).
GC_YOUNG_THRESHOLD = 50_000


def collect_less() -> None:
  """Freezes the objects that exist now (call after the imports) out of the cyclic collector's
  passes and raises its youngest generation's threshold to `GC_YOUNG_THRESHOLD`."""
  gc.freeze()
  _, older, oldest = gc.get_threshold()
  gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


# JAX's settings for the persistent cache, besides its folder and size bound.
_CACHE_SETTINGS = (("jax_persistent_cache_min_compile_time_secs", 0.0),
                   ("jax_persistent_cache_min_entry_size_bytes", -1))  # no minimum size
CACHE_MAX_BYTES = 2 * 2**30


def compilation_cache_environment(folder: Path) -> dict[str, str]:
  """The persistent cache's settings, unbounded, as the environment variables JAX reads at
  import."""
  settings = (("jax_compilation_cache_dir", folder), *_CACHE_SETTINGS)
  return {name.upper(): str(value) for name, value in settings}


def clear_compilation_cache_over(folder: Path, max_bytes: int = CACHE_MAX_BYTES) -> bool:
  """Empties `folder` when its files hold more than `max_bytes`; whether it did. The bound, kept
  between sessions, of a cache whose processes run unbounded."""
  folder = Path(folder)
  files = [f for f in folder.rglob("*") if f.is_file()] if folder.is_dir() else []
  if sum(f.stat().st_size for f in files) <= max_bytes:
    return False
  shutil.rmtree(folder, ignore_errors=True)
  folder.mkdir(parents=True, exist_ok=True)
  return True


def use_compilation_cache(folder: Path | None = None,
                          max_bytes: int = CACHE_MAX_BYTES) -> Path | None:
  """Compiles through JAX's persistent cache in `folder` (default: the project's setting),
  bounded to `max_bytes` (-1: unbounded), from now on in this process; returns the folder, or
  None where the setting turns it off."""
  import jax  # when called, not at import: see the module docstring
  folder = folder or paths.compilation_cache_dir()
  if folder is None:
    return None
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_compilation_cache_max_size", max_bytes)
  for name, value in _CACHE_SETTINGS:
    jax.config.update(name, value)
  return folder


class CompileCounter:
  """Counts, from its creation, the XLA compilations of this process (`compiled`, `compile_s`:
  programs and seconds, loads from the cache included) and the persistent cache's `hits` and
  `saved_s` (compile seconds the hits saved, as recorded when the entry was written)."""

  def __init__(self):
    import jax  # when called, not at import: see the module docstring
    self.compiled = self.hits = 0
    self.compile_s = self.saved_s = 0.0
    jax.monitoring.register_event_listener(self._event)
    jax.monitoring.register_event_duration_secs_listener(self._duration)

  def _event(self, event: str, **_):
    self.hits += event == "/jax/compilation_cache/cache_hits"

  def _duration(self, event: str, seconds: float, **_):
    if event == "/jax/core/compile/backend_compile_duration":
      self.compiled += 1
      self.compile_s += seconds
    elif event == "/jax/compilation_cache/compile_time_saved_sec":
      self.saved_s += seconds

  def summary(self) -> str:
    return (f"{self.compiled} programs in {self.compile_s:.0f} s; persistent cache: {self.hits} "
            f"hits saving {max(self.saved_s, 0.0):.0f} s of compiling")
