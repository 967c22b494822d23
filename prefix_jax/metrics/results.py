"""Reading prediction files and writing `scores.json`."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping


class Scores(dict):
  """Metric name -> float. `unavailable` maps metrics that could not be computed to the reason."""

  def __init__(self, values: Mapping[str, float] = (), unavailable: Mapping[str, str] = ()):
    super().__init__({k: float(v) for k, v in dict(values).items()})
    self.unavailable = dict(unavailable)


def _read_lines(path: str | os.PathLike) -> list[str]:
  with open(path, encoding="utf-8", newline="") as f:
    text = f.read()
  if not text:
    return []
  if text.endswith("\n"):
    text = text[:-1]
  # Only "\n" ends a line: splitlines() would also split on characters such as U+2028.
  return [line.removesuffix("\r") for line in text.split("\n")]


def read_predictions(path: str | os.PathLike, expected_count: int | None = None) -> list[str]:
  """One prediction per line (an empty line is an empty prediction).

  With `expected_count`, raises a one-line `ValueError` naming the file when the line count
  differs.
  """
  lines = _read_lines(path)
  if expected_count is not None and len(lines) != expected_count:
    raise ValueError(f"{os.fspath(path)} has {len(lines)} predictions but there are "
                     f"{expected_count} references")
  return lines


def read_references(path: str | os.PathLike) -> list[list[str]]:
  """E2E-style multi-reference file: one reference per line, inputs separated by an empty line."""
  groups: list[list[str]] = [[]]
  for line in _read_lines(path):
    line = line.strip()
    if line:
      groups[-1].append(line)
    elif groups[-1]:
      groups.append([])
  if not groups[-1]:
    groups.pop()
  return groups


def write_scores(path: str | os.PathLike, scores: Mapping[str, float]) -> str:
  """Writes `scores` as JSON (sorted keys), plus an `unavailable` object when there is one."""
  out: dict[str, object] = {}
  for name, value in sorted(scores.items()):
    value = float(value)
    if not math.isfinite(value):
      raise ValueError(f"score {name} is {value}: not writable as JSON")
    out[name] = value
  unavailable = getattr(scores, "unavailable", None)
  if unavailable:
    out["unavailable"] = dict(sorted(unavailable.items()))
  parent = os.path.dirname(os.fspath(path))
  if parent:
    os.makedirs(parent, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
  return os.fspath(path)
