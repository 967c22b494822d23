"""Where prefix_jax finds things outside the project: one setting each.

`PREFIX_JAX_SHARED`   data and small models for tests and experiments (default: `../shared`
                      beside the project root). Never copied into the project.
`PREFIX_JAX_CACHE`    downloaded wheels / extracted weights (default: `~/.cache/prefix_jax`).
`PREFIX_JAX_DATA_DIR` prepared TFDS datasets (default: `<cache>/tensorflow_datasets`).
`PREFIX_JAX_COMPILATION_CACHE`  JAX's persistent compilation cache, where the entry points that
                      use it (`make demo`, the test session) keep compiled programs (default:
                      `<cache>/jax_compilation`; `0` turns it off). See prefix_jax/runtime.py.
"""
from __future__ import annotations

import os
from pathlib import Path

from prefix_jax.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SharedDataMissing(UserError, FileNotFoundError):
  """Raised when a file expected under the shared directory is absent."""


def shared_dir() -> Path:
  """The shared data directory (may not exist)."""
  return Path(os.environ.get("PREFIX_JAX_SHARED", PROJECT_ROOT.parent / "shared")).resolve()


def shared_path(*parts: str, must_exist: bool = True) -> Path:
  """A path under the shared directory; raises `SharedDataMissing` naming it if absent."""
  path = shared_dir().joinpath(*parts)
  if must_exist and not path.exists():
    raise SharedDataMissing(
        f"{path} not found: set PREFIX_JAX_SHARED to the folder holding shared data "
        f"(currently {shared_dir()})")
  return path


def cache_dir() -> Path:
  return Path(os.environ.get("PREFIX_JAX_CACHE", Path.home() / ".cache" / "prefix_jax"))


def tfds_data_dir() -> Path:
  return Path(os.environ.get("PREFIX_JAX_DATA_DIR", cache_dir() / "tensorflow_datasets"))


def compilation_cache_dir() -> Path | None:
  """JAX's persistent compilation cache folder, or None where `PREFIX_JAX_COMPILATION_CACHE=0`."""
  value = os.environ.get("PREFIX_JAX_COMPILATION_CACHE", "")
  if value == "0":
    return None
  return Path(value) if value else cache_dir() / "jax_compilation"
