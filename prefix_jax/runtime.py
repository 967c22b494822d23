"""Process-level malloc setting for long training runs on the CPU: transparent huge pages.

XLA:CPU allocates each execution's temporary buffer (906 MiB for a GPT-2-small prefix step at
batch 8 x 128) with `posix_memalign`. glibc serves a request that large with a fresh `mmap`
and unmaps it when the step ends, so every step faults in every 4 KiB page again: ~240,000
minor page faults and 0.6-0.8 s of system CPU per step on the 2-core CI machine.

With glibc's tunable `glibc.malloc.hugetlb=1`, malloc asks the kernel for transparent huge
pages on the memory it maps (`madvise(MADV_HUGEPAGE)`; the kernel's THP mode `madvise` or
`always` honours it): the same step faults ~1,200 2 MiB pages, and freed memory still goes
back to the OS. The first large step of a process is slower (the kernel assembles the huge
pages: +7 s measured on the CI machine), the following ones are not.

An earlier setting kept freed memory instead (`mallopt`: one arena, no mmap, no trim): as
fast per step, but one arena fragments, and after a few steps the process held a second
temporary buffer (RSS 1.8 -> 2.7 GB for GPT-2-small), and full fine-tuning of the SmolLM2 shape
ran 15% slower.

glibc reads tunables only when a process starts, so `use_huge_pages()` re-executes the current
command once with the tunable in its environment. The entry points (`prefix_jax.main`,
`experiments/demo.py`) call it first thing; the benchmark starts its workers with
`malloc_environment()`. `PREFIX_JAX_HUGE_PAGES=0` turns it off. Elsewhere than Linux with
glibc it does nothing.
"""
from __future__ import annotations

import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "PREFIX_JAX_HUGE_PAGES"


def _applies(env) -> bool:
  return (env.get(OPT_OUT, "1") != "0" and sys.platform.startswith("linux")
          and platform.libc_ver()[0] == "glibc")


def malloc_environment(env=None) -> dict[str, str]:
  """`env` (default: this process's environment) with the huge-page tunable added to
  `GLIBC_TUNABLES` (other tunables kept), for starting a process."""
  env = dict(os.environ if env is None else env)
  current = env.get("GLIBC_TUNABLES", "")
  if _applies(env) and "glibc.malloc.hugetlb=" not in current:
    env["GLIBC_TUNABLES"] = f"{current}:{TUNABLE}" if current else TUNABLE
  return env


def huge_pages_active() -> bool:
  """Whether this process started with the tunable (so glibc applied it)."""
  return TUNABLE in os.environ.get("GLIBC_TUNABLES", "").split(":")


def use_huge_pages() -> None:
  """Re-executes this command with `malloc_environment()` unless it is already set (or opted
  out of). Call it before anything else runs: the command starts again from the beginning."""
  env = malloc_environment()
  if env.get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES"):
    return
  # argv[0] is this interpreter's own path: a bare 'python' would be looked up on PATH and
  # could start another installation without this one's packages.
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
