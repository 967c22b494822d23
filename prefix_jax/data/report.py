"""Accounting for bad input: every skipped or altered record is counted and named."""
from __future__ import annotations

import collections
import dataclasses
import logging

_MAX_IDS_KEPT = 100  # ids kept per reason in metadata; the counts are always exact


class CorruptFileError(ValueError):
  """A file that cannot be parsed at all; the message names the file and the line."""

  def __init__(self, path, line: int | None, reason: str):
    self.path, self.line, self.reason = str(path), line, reason
    where = f"{path}, line {line}" if line is not None else f"{path}"
    super().__init__(f"{where}: {reason}")


class NoExamplesError(CorruptFileError):
  """A split whose every record is bad (or that holds none): names the file and the first bad
  record (`file:line` for line-based files)."""

  def __init__(self, report: "BadInputReport", split: str):
    reason = f"no examples for split {split!r}: the file holds no records"
    if report.first is not None:
      counts = ", ".join(f"{r}: {len(ids)}" for r, ids in sorted(report.problems.items()))
      reason = (f"no examples for split {split!r}: all {report.count()} records are bad "
                f"({counts}); first bad record {report.first[1]} ({report.first[0]})")
    super().__init__(report.source, None, reason)


@dataclasses.dataclass
class BadInputReport:
  """Problems found in one source, grouped by reason: `{reason: [record ids]}`."""
  source: str
  problems: dict[str, list[str]] = dataclasses.field(
      default_factory=lambda: collections.defaultdict(list))
  first: tuple[str, str] | None = None  # (reason, record id) of the first record added

  def add(self, reason: str, record_id: str) -> None:
    self.problems[reason].append(str(record_id))
    if self.first is None:
      self.first = (reason, str(record_id))

  def count(self, reason: str | None = None) -> int:
    if reason is not None:
      return len(self.problems.get(reason, ()))
    return sum(len(ids) for ids in self.problems.values())

  def ids(self, reason: str) -> list[str]:
    return list(self.problems.get(reason, ()))

  def extend(self, other: "BadInputReport") -> None:
    for reason, ids in other.problems.items():
      self.problems[reason].extend(ids)
    self.first = self.first or other.first

  def summary(self) -> str:
    if not self.count():
      return f"{self.source}: no bad input"
    parts = []
    for reason, ids in sorted(self.problems.items()):
      shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
      parts.append(f"{reason}: {len(ids)} [{shown}]")
    return f"{self.source}: {self.count()} bad records ({'; '.join(parts)})"

  def to_json(self) -> dict:
    """JSON-able form for TFDS metadata: exact counts, at most 100 ids per reason."""
    return {reason: {"count": len(ids), "ids": ids[:_MAX_IDS_KEPT]}
            for reason, ids in sorted(self.problems.items())}

  def log(self, logger: logging.Logger) -> None:
    if self.count():
      logger.warning("%s", self.summary())
