"""`prefix_jax.runtime`: glibc's huge-page tunable, applied by re-executing the entry point."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefix_jax import runtime

ROOT = Path(__file__).resolve().parent.parent
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# The gradient of a function with [4096, 4096] float32 intermediates (64 MiB each): after 12
# warm-up calls, prints whether the tunable is active and the minor page faults of 8 more calls.
PROGRAM = """
from prefix_jax.runtime import huge_pages_active
import jax, jax.numpy as jnp
g = jax.jit(jax.grad(lambda x: (jnp.tanh(x @ x.T) @ x).sum()))
x = jnp.ones((4096, 256))
def faults():
  return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])
for _ in range(12):
  g(x).block_until_ready()
before = faults()
for _ in range(8):
  g(x).block_until_ready()
print(huge_pages_active(), faults() - before)
"""

REEXEC = """
import sys
from prefix_jax.runtime import use_huge_pages, huge_pages_active
use_huge_pages()
print(huge_pages_active(), sys.argv[1:])
"""


def _env(**extra):
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", runtime.OPT_OUT)}
  return {**env, **extra}


def _run(code, env, *args):
  return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=180, check=True).stdout.split()


def test_malloc_environment_adds_the_tunable_and_keeps_others():
  env = runtime.malloc_environment({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"})
  if not runtime._applies(env):
    pytest.skip("not Linux with glibc: the tunable is never set")
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=0:" + runtime.TUNABLE
  assert runtime.malloc_environment(env) == env  # idempotent
  assert "GLIBC_TUNABLES" not in runtime.malloc_environment({runtime.OPT_OUT: "0"})


def test_use_huge_pages_reexecutes_once_with_the_arguments():
  if not runtime._applies(os.environ):
    pytest.skip("not Linux with glibc: use_huge_pages does nothing")
  assert _run(REEXEC, _env(), "--flag=1", "x") == ["True", "['--flag=1',", "'x']"]
  assert _run(REEXEC, _env(**{runtime.OPT_OUT: "0"}), "y") == ["False", "['y']"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_huge_pages_cut_page_faults_per_call():
  if not runtime._applies(os.environ):
    pytest.skip("not Linux with glibc: the tunable is never set")
  if not THP.exists() or "[never]" in THP.read_text():
    pytest.skip("transparent huge pages are off in this kernel: the tunable cannot act")
  active, huge = _run(PROGRAM, runtime.malloc_environment(_env()))
  inactive, default = _run(PROGRAM, _env())
  assert (active, inactive) == ("True", "False")
  assert int(default) > 80000, default  # measured ~278,000: fresh 4 KiB pages every call
  assert int(huge) < int(default) / 10, (huge, default)  # measured ~1,600
