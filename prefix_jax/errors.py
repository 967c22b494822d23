"""User-facing errors: the one type every entry point turns into one line and an exit code.

A leaf module (imports nothing from the package), so any module may raise these without an
import cycle. The exit-code convention of `python -m prefix_jax.main` / `prefix_jax.evaluate`:

  0    done (or preempted by SIGTERM after saving the current step)
  2    bad input: a config value, flag, file, checkpoint, data row or workdir (`UserError`)
  3    training diverged: a NaN/Inf loss or parameter; nothing non-finite was saved
  130  interrupted by SIGINT (Ctrl-C) after saving the current step
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class UserError(Exception):
  """Bad input or a fault the user can fix; the message is one line naming the key, file
  (and line) or number at fault. Entry points print `error: <message>` and exit `exit_code`."""
  exit_code = EXIT_USER_ERROR


class ConfigError(UserError, ValueError):
  """A config value that cannot work (the message names the key)."""


class TrainingDiverged(UserError, RuntimeError):
  """The loss or the updated parameters became NaN/Inf; the last good checkpoint is kept."""
  exit_code = EXIT_DIVERGED


class CheckpointError(UserError, OSError):
  """A checkpoint could not be saved (disk full, permissions) or none could be read."""


def one_line(msg) -> str:
  """Collapses a (possibly multi-line, third-party) message to a single line."""
  return " ".join(str(msg).split())
