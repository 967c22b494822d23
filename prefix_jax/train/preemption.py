"""SIGTERM (preemption) and SIGINT (Ctrl-C) become a stop request the training loop honours
after its current step: it saves that step and returns. A second Ctrl-C stops at once.

`python -m prefix_jax.main` installs the handlers before anything else, so a signal during
start-up or compilation is not lost; library callers get them from `train_and_evaluate`.
"""
from __future__ import annotations

import signal
import threading

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """`signum` is the first stop signal received (None: none yet)."""

  def __init__(self):
    self.signum: int | None = None
    self._old: dict = {}

  @property
  def requested(self) -> bool:
    return self.signum is not None

  @property
  def status(self) -> str:
    """The run's status once it stops for this request."""
    return "interrupted" if self.signum == signal.SIGINT else "preempted"

  def _handle(self, signum, frame):
    if signum == signal.SIGINT and self.signum == signal.SIGINT:
      signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt
    self.signum = self.signum or signum

  def install(self) -> "StopRequest":
    if threading.current_thread() is threading.main_thread():  # signal.signal's restriction
      self._old = {s: signal.signal(s, self._handle) for s in _SIGNALS}
    return self

  def uninstall(self) -> None:
    for s, old in self._old.items():
      signal.signal(s, old)
    self._old = {}


_active: StopRequest | None = None


def active() -> StopRequest | None:
  return _active


def install() -> StopRequest:
  """Installs the handlers (once) and returns the process's stop request."""
  global _active
  if _active is None:
    _active = StopRequest().install()
  return _active


def uninstall() -> None:
  global _active
  if _active is not None:
    _active.uninstall()
    _active = None
