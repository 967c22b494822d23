"""What both commands (`prefix_jax.main`, `prefix_jax.evaluate`) do at their edges: parse
flags and turn bad input into one line on stderr and an exit code (see `prefix_jax.errors`).

Errors raised while absl parses flags (a config file that does not exist, `:key=value` with an
unknown key or a bad value, an unknown or mistyped `--config.x.y`) are caught here too.
"""
from __future__ import annotations

import contextlib
import sys

from absl import flags
from absl import logging as absl_logging

from prefix_jax.data.report import CorruptFileError, NoExamplesError
from prefix_jax.data.sources import SplitUnavailableError
from prefix_jax.errors import EXIT_USER_ERROR, UserError, one_line


def fail(message: str, code: int = EXIT_USER_ERROR):
  print(f"error: {one_line(message)}", file=sys.stderr)
  sys.exit(code)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing (pass as `app.run(..., flags_parser=parse_flags)`), one line on error."""
  try:
    rest = flags.FLAGS(argv)
    if "config" in flags.FLAGS and flags.FLAGS["config"].value is not None:
      flags.FLAGS["config"].value.keys()  # a config file that failed to load raises only here
  except Exception as e:  # absl, ml_collections and the config file's own errors
    fail(flag_error_line(e, argv))
  if not flags.FLAGS["verbosity"].present:  # libraries' INFO lines (orbax, TFDS) only on -v 0
    absl_logging.set_verbosity(absl_logging.WARNING)
  return rest


def flag_error_line(e: Exception, argv: list[str]) -> str:
  msg = str(e)
  if "Traceback (most recent call last)" in msg:  # raised by the config file's get_config
    where = msg.split(": Error whilst parsing", 1)[0]
    return f"{where}: {msg.strip().splitlines()[-1]}"
  if isinstance(e, OSError) and "No such file or directory" in msg:
    missing = msg.split("Attempted [Relative path]:", 1)[-1].split("\n")[1].strip()
    return f"config file not found: {missing or msg}"
  if isinstance(e, (AttributeError, KeyError)):  # an unknown --config.x.y
    key = msg.strip("'\"")
    args = [a for a in argv if a.startswith("--config.") and f".{key}" in a.split("=")[0]]
    return f"unknown config key {key!r}" + (f" in {args[0]}" if args else "")
  if isinstance(e, SyntaxError):
    return f"config file {e.filename}, line {e.lineno}: {e.msg}"
  return msg


def _data_error_line(e: Exception, task: str | None) -> str | None:
  """The data layer's bad-input errors that are not `UserError`s: corrupt files (file and
  line; a split where every row is malformed names its first bad one), missing splits,
  unknown tasks, fewer examples than one batch."""
  if isinstance(e, NoExamplesError) and task:
    return f"task {task!r}: {e}"
  if isinstance(e, (CorruptFileError, SplitUnavailableError)):
    return str(e)
  if isinstance(e, KeyError) and str(e).strip("'\"").startswith("unknown task"):
    return str(e).strip("'\"")
  if isinstance(e, ValueError) and "cannot fill one global batch" in str(e):  # data.iterator
    return f"{e} (train.batch_size); use a smaller batch or more training examples"
  return None


@contextlib.contextmanager
def one_line_errors(task: str | None = None):
  """`UserError`s (and the data errors above, of `task`) -> `error: <message>`, exit
  `e.exit_code`."""
  try:
    yield
  except UserError as e:
    fail(str(e), e.exit_code)
  except (KeyError, ValueError) as e:
    line = _data_error_line(e, task)
    if line is None:
      raise
    fail(line)
