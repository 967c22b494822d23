"""Decoding raw files so that invalid UTF-8 is found per record, not fatal for the file."""
from __future__ import annotations

import re
from pathlib import Path

_ESCAPED = re.compile("[\udc80-\udcff]")


def read_text(path: Path) -> str:
  """The file as text; bytes that are not UTF-8 become lone surrogates (see `has_bad_bytes`)."""
  return Path(path).read_bytes().decode("utf-8", errors="surrogateescape")


def has_bad_bytes(*texts: str) -> bool:
  """Whether any of `texts` held bytes that were not valid UTF-8."""
  return any(_ESCAPED.search(t) for t in texts if t)
