"""Shared test fixtures."""
import os
import shutil
import tempfile

import pytest

from prefix_jax import paths, runtime

# The tests compile hundreds of small programs and run each a few times, so they ask XLA for
# the cheapest code generation: no LLVM optimization passes, and the CPU backend's elemental
# emitters for fused loops instead of its MLIR fusion emitters (docs/benchmarks.md, "Compile
# flags of the tests"). Both change how code is generated, not the arithmetic (XLA's CPU backend
# keeps IEEE semantics either way). Set before any test initializes JAX; subprocesses inherit
# them (`with_xla_flags` keeps them).
XLA_TEST_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
if XLA_TEST_FLAGS not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TEST_FLAGS}".strip()

# Python subprocesses started by a test import no torch (tests/subprocess_site/sitecustomize.py).
SUBPROCESS_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subprocess_site")
if SUBPROCESS_SITE not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
  os.environ["PYTHONPATH"] = os.pathsep.join(
      x for x in (SUBPROCESS_SITE, os.environ.get("PYTHONPATH")) if x)

# One persistent compilation cache for the session (prefix_jax/runtime.py): the xdist workers
# and every subprocess a test starts inherit it through the environment, so a program compiled
# once (a tiny model's train step, compiled again by each subprocess run) is loaded thereafter.
# PREFIX_JAX_COMPILATION_CACHE=DIR keeps one across sessions (`make test` keeps
# ~/.cache/prefix_jax/compiled-tests), =0 turns it off; unset, a temporary folder is made by the
# first process (the xdist controller) and removed by it at the end. Every process of the session
# runs the cache unbounded, in-process and children alike (runtime's docstring: mixed bounds
# break writes); a kept folder is emptied at the start of a session once it holds more than
# runtime.CACHE_MAX_BYTES. Tests whose subject is compilation turn the cache off for their runs.
_OWNER = "PREFIX_JAX_TEST_CACHE_OWNER"
if "PREFIX_JAX_COMPILATION_CACHE" not in os.environ:
  os.environ["PREFIX_JAX_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="prefix_jax_compiled_")
  os.environ[_OWNER] = str(os.getpid())
if paths.compilation_cache_dir() is not None:
  if _OWNER not in os.environ and "PYTEST_XDIST_WORKER" not in os.environ:
    runtime.clear_compilation_cache_over(paths.compilation_cache_dir())
  os.environ.update(runtime.compilation_cache_environment(paths.compilation_cache_dir()))
  runtime.use_compilation_cache(paths.compilation_cache_dir(), max_bytes=-1)


def pytest_collection_finish(session):
  del session
  runtime.collect_less()  # as the entry points do once their imports are done


def pytest_unconfigure(config):
  del config
  if os.environ.get(_OWNER) == str(os.getpid()):
    shutil.rmtree(os.environ["PREFIX_JAX_COMPILATION_CACHE"], ignore_errors=True)


def with_xla_flags(env: dict) -> dict:
  """os.environ updated by `env`, whose XLA_FLAGS are added to the inherited ones."""
  out = dict(os.environ, **env)
  if "XLA_FLAGS" in env:
    out["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {env['XLA_FLAGS']}".strip()
  return out


@pytest.fixture(scope="session")
def shared_dir():
  """The shared data folder; tests that need it skip with a clear message where it is absent."""
  root = paths.shared_dir()
  if not root.exists():
    pytest.skip(f"shared data folder {root} absent (set PREFIX_JAX_SHARED)")
  return root


@pytest.fixture(scope="session", autouse=True)
def _quiet_tf_logs():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  yield


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty weights cache (PREFIX_JAX_CACHE) that the test must leave unwritten."""
  folder = tmp_path / "cache"
  monkeypatch.setenv("PREFIX_JAX_CACHE", str(folder))
  yield folder
  assert not folder.exists(), f"cache written: {list(folder.rglob('*'))}"


# Files whose tests take the longest, longest first (a full session, docs/benchmarks.md). The
# test session runs them first (`make test`: `--dist loadfile --no-loadscope-reorder`), so that
# while one xdist worker runs a long file the other works through the many short ones, instead
# of one worker finishing its last long file alone. The order changes no result.
LONGEST_FIRST = ("test_paper.py", "test_sweep_resume.py", "test_trainer_devices.py",
                 "test_reliability_faults.py", "test_trainer.py", "test_bench_smoke.py",
                 "test_tasks_sst2_minilm.py", "test_weights_gguf.py", "test_methods_export.py",
                 "test_prefix_semantics.py", "test_remat.py", "test_tasks_every_config.py",
                 "test_decode_search.py", "test_runtime.py", "test_methods_decode.py",
                 "test_sweep.py", "test_train_invariants.py", "test_multi.py")


def pytest_collection_modifyitems(config, items):
  del config
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: else as collected
