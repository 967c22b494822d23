"""Errors of the serving layer, each one line; `status` is the HTTP code the server answers."""
from __future__ import annotations

from prefix_jax.errors import UserError


class ServingError(UserError, ValueError):
  """A request that cannot be served. `param` names the offending field (or None)."""

  def __init__(self, message: str, *, status: int = 400, param: str | None = None):
    super().__init__(message)
    self.status, self.param = status, param


class PrefixLoadError(UserError, ValueError):
  """A prefix file that cannot join the bank (unreadable, another backbone, another form)."""
