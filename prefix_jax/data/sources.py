"""Where a builder's raw files come from: the manual directory first, then the network.

The manual directory for dataset `x` is `<PREFIX_JAX_SHARED>/data/x` (see `prefix_jax.paths`).
Nothing here waits long on a network that is absent: a reachability probe with a hard
timeout runs before any download, and `PREFIX_JAX_OFFLINE=1` skips the network entirely.
"""
from __future__ import annotations

import functools
import os
import socket
import threading
import urllib.parse
from pathlib import Path

from prefix_jax import paths
from prefix_jax.errors import UserError

PROBE_TIMEOUT_S = 3.0


class DataUnavailableError(UserError, FileNotFoundError):
  """Neither the manual directory nor the network can provide a dataset's files."""


class SplitUnavailableError(KeyError):
  """A split of a prepared dataset was not generated because its raw file is missing."""

  def __str__(self):  # KeyError would quote the message
    return str(self.args[0])


def offline() -> bool:
  """True when `PREFIX_JAX_OFFLINE` forbids any network access."""
  return os.environ.get("PREFIX_JAX_OFFLINE", "").lower() in ("1", "true", "yes")


def manual_dir(subdir: str) -> Path:
  """The manual directory of one dataset (may not exist)."""
  return paths.shared_path("data", subdir, must_exist=False)


@functools.lru_cache(maxsize=None)
def _reachable(host: str, port: int, timeout: float) -> bool:
  result = []

  def probe():
    try:
      with socket.create_connection((host, port), timeout=timeout):
        result.append(True)
    except OSError:
      result.append(False)

  # DNS resolution is not bounded by the socket timeout: run it in a thread we can abandon.
  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout)
  return bool(result and result[0])


def network_available(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
  """Whether `url`'s host accepts a TCP connection within `timeout` seconds."""
  if offline():
    return False
  parts = urllib.parse.urlsplit(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  return _reachable(parts.hostname, port, timeout)


def unavailable_message(dataset: str, root: Path, missing, urls) -> str:
  url_list = "\n  ".join(urls)
  return (f"{dataset}: raw files {sorted(missing)} not found in the manual directory {root} "
          f"and the official source is unreachable (no network"
          f"{', PREFIX_JAX_OFFLINE is set' if offline() else ''}). Either download\n  {url_list}\n"
          f"and place the files in {root} (or set PREFIX_JAX_SHARED to a folder holding "
          f"data/{root.name}/), or run where the network is reachable.")
