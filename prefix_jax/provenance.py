"""Where a result came from: the code's commit and the machine (standard library only, so
that light tools such as the benchmark parent can import it)."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def git_commit(cwd: Path | None = None) -> str:
  """The code's commit (with '+dirty' if tracked files changed), or 'unknown'.

  Changes under the top-level `results/` are not code (a run that writes its tables there
  must not call its own commit dirty), so they are left out of the check.
  """
  cwd = cwd or Path(__file__).resolve().parent
  try:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                            ":(top)", ":(top,exclude)results/"],
                           cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return head + ("+dirty" if dirty else "")


def cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def _version(name: str) -> str | None:
  from importlib import metadata
  try:
    return metadata.version(name)
  except metadata.PackageNotFoundError:
    return None


def machine(libraries=("jax", "jaxlib", "flax", "optax", "numpy")) -> dict:
  """The machine results were measured on: CPU, cores, memory, platform, library versions."""
  try:
    usable = len(os.sched_getaffinity(0))
  except AttributeError:
    usable = os.cpu_count()
  try:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
  except (ValueError, OSError, AttributeError):
    mem = None
  return {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable,
          "memory_gib": round(mem, 1) if mem else None, "platform": platform.platform(),
          "python": platform.python_version(),
          "versions": {n: _version(n) for n in libraries}}
