"""Shared test fixtures."""
import os

import pytest

from prefix_jax import paths


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
