"""Errors of the weight loaders: one line each, naming the file and the problem.

`WeightsError` is the class `hf.py` raises; the others refine it so callers can catch
`FileNotFoundError` for a missing file and `WeightsError` (a `ValueError`) for everything else.
"""
from __future__ import annotations

from prefix_jax.weights.hf import WeightsError


class MissingFileError(WeightsError, FileNotFoundError):
  """A checkpoint, tokenizer or cached file that should exist does not."""


class PickleRefusedError(WeightsError):
  """A PyTorch pickle (`.bin`/`.pt`/`.pth`): never unpickled, because unpickling runs code."""


class OfflineError(WeightsError):
  """A hub name was given but the hub cannot be reached."""


def one_line(msg: str) -> str:
  """Collapses a (possibly multi-line, third-party) message to a single line."""
  return " ".join(str(msg).split())


__all__ = ["WeightsError", "MissingFileError", "PickleRefusedError", "OfflineError", "one_line"]
