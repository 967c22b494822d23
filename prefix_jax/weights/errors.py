"""Errors of the weight loaders: one line each, naming the file and the problem.

`WeightsError` (a `UserError` and a `ValueError`) is what every loader raises; the others refine
it so callers can catch `FileNotFoundError` for a missing file and `WeightsError` for the rest.
"""
from __future__ import annotations

from prefix_jax.errors import UserError, one_line


class WeightsError(UserError, ValueError):
  """A checkpoint that cannot be read or does not fit its config (message names the file)."""


class MissingFileError(WeightsError, FileNotFoundError):
  """A checkpoint, tokenizer or cached file that should exist does not."""


class PickleRefusedError(WeightsError):
  """A PyTorch pickle (`.bin`/`.pt`/`.pth`): never unpickled, because unpickling runs code."""


class OfflineError(WeightsError):
  """A hub name was given but the hub cannot be reached."""


__all__ = ["WeightsError", "MissingFileError", "PickleRefusedError", "OfflineError", "one_line"]
