"""`keep_freed_memory`: a step's large temporary buffer reuses the last step's pages, on CPU
backends only. The persistent compilation cache: a second process loads what a first compiled.
`collect_less`: the entry points freeze their imports out of the garbage collector's passes,
and reference cycles are still freed."""
import ast
import ctypes.util
import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prefix_jax import paths, runtime
from prefix_jax.runtime import cpu_backend_expected, keep_freed_memory, kept_memory_environment

ROOT = Path(__file__).resolve().parent.parent

# The gradient of a function with [4096, 4096] float32 intermediates (64 MiB each): after 8
# warm-up calls, prints whether the setting applied and the minor page faults of each of 12 more
# calls. The kept heap can still grow at some call (seen up to four times in 8 calls under a
# loaded suite), so the test compares the median call, not the sum.
PROGRAM = """
import sys
from prefix_jax.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else False
import jax, jax.numpy as jnp
g = jax.jit(jax.grad(lambda x: (jnp.tanh(x @ x.T) @ x).sum()))
x = jnp.ones((4096, 16))  # x @ x.T: [4096, 4096]; a narrow x keeps the matmuls cheap
def faults():
  return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])
for _ in range(8):
  g(x).block_until_ready()
per_call = []
for _ in range(12):
  before = faults()
  g(x).block_until_ready()
  per_call.append(faults() - before)
print(applied, *per_call)
"""


def _faults(keep: bool) -> tuple[bool, float]:
  """(whether the setting applied, the median call's minor page faults)."""
  # XLA's default code generation, as a user's run has it (not the test session's compile-cheap
  # flags): the 20 large calls take less CPU, and the pages they touch are the same.
  out = subprocess.run([sys.executable, "-c", PROGRAM, "1" if keep else "0"], cwd=ROOT,
                       env=dict(os.environ, XLA_FLAGS=""), capture_output=True, text=True,
                       timeout=120, check=True)
  applied, *per_call = out.stdout.split()
  return applied == "True", float(np.median([int(f) for f in per_call]))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_keep_freed_memory_stops_page_faults_per_call():
  applied, kept = _faults(True)
  if not applied:
    pytest.skip("not glibc: keep_freed_memory does nothing here")
  _, default = _faults(False)
  assert default > 10000, default  # measured ~34,000 fresh 4 KiB pages per call
  assert kept < default / 10, (kept, default)  # measured 0 (growths happen at few calls)


def test_kept_memory_environment_names_glibcs_variables():
  # glibc reads these names at startup (mallopt(3): the MMAP/TRIM ones end in '_'); a misspelt
  # name is silently ignored, which would make the benchmark's PEFT-with-our-setting run plain.
  assert kept_memory_environment() == {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
                                       "MALLOC_TRIM_THRESHOLD_": "2147483647"}


@pytest.mark.parametrize("platforms, choice, applied", [
    ("cuda", "", False), ("tpu,cpu", "", False), ("cpu", "", True), ("cuda", "1", True),
    ("cpu", "0", False)])
def test_keep_freed_memory_applies_only_to_cpu_backends(monkeypatch, platforms, choice, applied):
  monkeypatch.setenv("JAX_PLATFORMS", platforms)
  monkeypatch.setenv("PREFIX_JAX_KEEP_FREED_MEMORY", choice)
  if applied and not ctypes.util.find_library("c"):
    pytest.skip("no C library to call mallopt on")
  # Applying it in the test process is harmless: it is what every entry point does on CPU.
  assert keep_freed_memory() is applied
  assert cpu_backend_expected() is (platforms.split(",")[0] == "cpu")


def test_accelerator_plugin_means_no_cpu_backend(monkeypatch):
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  monkeypatch.setattr(runtime, "_accelerator_plugins", lambda: ["xla_cuda12"])
  assert not runtime.cpu_backend_expected()
  monkeypatch.setattr(runtime, "_accelerator_plugins", lambda: [])
  assert runtime.cpu_backend_expected()


# Compiles and runs one program; prints its result, the programs compiled and the cache hits.
CACHED = """
from prefix_jax import paths, runtime
counter = runtime.CompileCounter()
import jax, jax.numpy as jnp
x = jnp.linspace(-3.0, 3.0, 4096).reshape(64, 64)
y = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(-1) * 1.2345)(x)
print(repr(bytes(jax.device_get(y).tobytes()).hex()), counter.compiled, counter.hits)
"""


def _cached_run(folder):
  env = dict(os.environ, **runtime.compilation_cache_environment(folder))
  out = subprocess.run([sys.executable, "-c", CACHED], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120, check=True)
  result, compiled, hits = out.stdout.split()
  return result, int(compiled), int(hits)


def test_second_process_loads_its_programs_from_the_cache_with_equal_results(tmp_path):
  first = _cached_run(tmp_path / "jit")
  second = _cached_run(tmp_path / "jit")
  assert first[1] >= 1 and first[2] == 0, first  # a fresh folder: everything compiled
  assert second[2] == second[1] == first[1], (first, second)  # every program loaded
  assert second[0] == first[0]  # bitwise
  assert list((tmp_path / "jit").glob("jit__lambda-*-cache"))


def test_compilation_cache_setting(monkeypatch, tmp_path):
  monkeypatch.setenv("PREFIX_JAX_CACHE", str(tmp_path))
  monkeypatch.delenv("PREFIX_JAX_COMPILATION_CACHE", raising=False)
  assert paths.compilation_cache_dir() == tmp_path / "jax_compilation"
  monkeypatch.setenv("PREFIX_JAX_COMPILATION_CACHE", str(tmp_path / "elsewhere"))
  assert paths.compilation_cache_dir() == tmp_path / "elsewhere"
  monkeypatch.setenv("PREFIX_JAX_COMPILATION_CACHE", "0")
  assert paths.compilation_cache_dir() is None
  assert runtime.use_compilation_cache() is None


# The test session's cache settings, as conftest applies them in a process, against what that
# process's children read from the environment.
SESSION_SETTINGS = """
import os, sys
sys.path.insert(0, "tests")
import conftest, jax
print(jax.config.jax_compilation_cache_max_size,
      os.environ.get("JAX_COMPILATION_CACHE_MAX_SIZE", "-1"))
"""


@pytest.mark.parametrize("kept", [True, False], ids=["kept_folder", "temporary_folder"])
def test_test_session_and_its_children_agree_on_the_cache_bound(kept, tmp_path):
  """A bounded process fails every write to a folder that unbounded ones write (JAX reads the
  access-time files only bounded processes make), so the session and its children agree."""
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAX_", "PREFIX_JAX_TEST_CACHE", "PYTEST_XDIST"))}
  env["PREFIX_JAX_COMPILATION_CACHE"] = str(tmp_path / "compiled")
  if not kept:
    env["PREFIX_JAX_TEST_CACHE_OWNER"] = "1"
  out = subprocess.run([sys.executable, "-c", SESSION_SETTINGS], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120, check=True)
  in_process, children = out.stdout.split()
  assert int(in_process) == int(children) == -1


def test_a_kept_cache_is_emptied_once_over_its_bound(tmp_path):
  folder = tmp_path / "compiled"
  folder.mkdir()
  (folder / "jit_f-1-cache").write_bytes(b"x" * 600)
  (folder / "jit_g-2-cache").write_bytes(b"y" * 300)
  assert not runtime.clear_compilation_cache_over(folder, max_bytes=900)
  assert len(list(folder.iterdir())) == 2
  assert runtime.clear_compilation_cache_over(folder, max_bytes=899)
  assert folder.is_dir() and not list(folder.iterdir())
  assert not runtime.clear_compilation_cache_over(tmp_path / "absent", max_bytes=0)


COLLECT_LESS = """
import gc, weakref
from prefix_jax import runtime
defaults = gc.get_threshold()
runtime.collect_less()
class Node:
  pass
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after the call
freed = []
weakref.finalize(a, freed.append, True)
del a, b
keep = [[] for _ in range(2 * runtime.GC_YOUNG_THRESHOLD)]  # no gc.collect(): the automatic one
print(gc.get_freeze_count() > 0, gc.get_threshold()[0], gc.get_threshold()[1:] == defaults[1:],
      freed == [True])
"""


def test_collect_less_freezes_what_exists_and_still_frees_cycles():
  """After the call, a reference cycle dies in the collector's own passes."""
  out = subprocess.run([sys.executable, "-c", COLLECT_LESS], capture_output=True, text=True,
                       cwd=ROOT, check=True).stdout.split()
  assert out == ["True", str(runtime.GC_YOUNG_THRESHOLD), "True", "True"]


ENTRY_POINTS = ("prefix_jax/main.py", "prefix_jax/evaluate.py", "prefix_jax/generate.py",
                "prefix_jax/serve.py", "prefix_jax/sweep/__main__.py",
                "experiments/paper/__main__.py", "experiments/demo.py", "tests/run_tiny.py")


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_entry_points_collect_less_after_their_imports(path):
  """The `if __name__ == "__main__":` block that starts the job calls `collect_less()` before
  the job (its last statement), after every import of the module."""
  tree = ast.parse((ROOT / path).read_text())
  mains = [node for node in tree.body if isinstance(node, ast.If)
           and ast.unparse(node.test) == "__name__ == '__main__'"]
  job = mains[-1].body
  calls = [i for i, stmt in enumerate(job) if "collect_less()" in ast.unparse(stmt)]
  imports = [i for i, stmt in enumerate(job) if isinstance(stmt, (ast.Import, ast.ImportFrom))]
  assert calls and calls[0] < len(job) - 1, ast.unparse(mains[-1])
  assert all(i < calls[0] for i in imports), ast.unparse(mains[-1])
  module_imports = [n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
  assert all(line < mains[-1].lineno for line in module_imports)
