"""Text examples to token ids: source + separator, target + EOS, with truncation accounting.

The ids reproduce the paper's training string `' {source} {bos} {target} {eos}'`:
`encode(' ' + source) + [sep] + encode(' ' + target) + [eos]`, with sep = `bos_id` when the
tokenizer has one, else `eos_id` (GPT-2: both are `<|endoftext|>`). Pieces are encoded
separately so that no tokenizer has to parse special-token strings.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np

from prefix_jax.data.report import BadInputReport


@dataclasses.dataclass(frozen=True)
class TextExample:
  """One training pair; `source` is already linearized."""
  id: str
  source: str
  target: str
  task: int = 0


@dataclasses.dataclass(frozen=True)
class EvalRecord:
  """One unique input with all its references."""
  id: str
  source: str
  references: tuple[str, ...]
  task: int = 0


@dataclasses.dataclass
class Encoded:
  """Columnar token ids. `source[i]` int32 [S_i] ends with the separator; `target[i]` int32
  [T_i] ends with EOS (empty for evaluation data). `task` int32 [N]."""
  ids: list[str]
  source: list[np.ndarray]
  target: list[np.ndarray]
  task: np.ndarray
  references: list[tuple[str, ...]] | None
  report: BadInputReport

  def __len__(self) -> int:
    return len(self.ids)

  @property
  def lengths(self) -> np.ndarray:
    """Full sequence length per example, int32 [N]: len(source) + len(target)."""
    return np.array([len(s) + len(t) for s, t in zip(self.source, self.target)], np.int32)


def separator_ids(tokenizer) -> list[int]:
  bos = getattr(tokenizer, "bos_id", None)
  return [int(bos if bos is not None else tokenizer.eos_id)]


def _encode_all(tokenizer, texts: Sequence[str]) -> list[list[int]]:
  if hasattr(tokenizer, "encode_batch"):
    return tokenizer.encode_batch(texts)
  return [tokenizer.encode(t) for t in texts]


def _warn(report: BadInputReport, reason: str, what: str) -> None:
  n = report.count(reason)
  if n:
    shown = ", ".join(report.ids(reason)[:5])
    warnings.warn(f"{n} examples {what} (ids: {shown}{', ...' if n > 5 else ''})", stacklevel=3)


def encode_examples(examples: Sequence[TextExample], tokenizer, *, max_length: int,
                    max_source_length: int | None = None, max_target_length: int | None = None,
                    sep: Sequence[int] | None = None, leading_space: bool = True,
                    overflow: str = "truncate") -> Encoded:
  """Tokenizes training pairs.

  max_length: the most tokens the model takes for source + separator + target + EOS.
  max_source_length / max_target_length: optional caps applied first (source tokens before the
    separator, target tokens before EOS), counted as `source_truncated` / `target_truncated`.
  overflow: for sequences still over `max_length`, 'truncate' cuts the end of the target (the
    paper's `truncation=True`; the EOS may be lost) and counts `truncated`; 'drop' drops them
    and counts `too_long`. A source that leaves no room for a target token is always dropped.
  Empty targets are dropped and counted as `empty_target`. Warnings name the counts.
  """
  if overflow not in ("truncate", "drop"):
    raise ValueError(f"overflow must be 'truncate' or 'drop', got {overflow!r}")
  sep = list(sep) if sep is not None else separator_ids(tokenizer)
  space = " " if leading_space else ""
  report = BadInputReport("tokenization")
  src_all = _encode_all(tokenizer, [space + ex.source for ex in examples])
  tgt_all = _encode_all(tokenizer, [space + ex.target for ex in examples])
  out = Encoded([], [], [], np.zeros(0, np.int32), None, report)
  tasks = []
  for ex, src, tgt in zip(examples, src_all, tgt_all):
    if not ex.target.strip() or not tgt:
      report.add("empty_target", ex.id)
      continue
    if max_source_length is not None and len(src) > max_source_length:
      src = src[:max_source_length]
      report.add("source_truncated", ex.id)
    if max_target_length is not None and len(tgt) > max_target_length:
      tgt = tgt[:max_target_length]
      report.add("target_truncated", ex.id)
    full_src = src + sep
    full_tgt = tgt + [tokenizer.eos_id]
    excess = len(full_src) + len(full_tgt) - max_length
    if excess > 0:
      if overflow == "drop" or excess >= len(full_tgt):
        report.add("too_long", ex.id)
        continue
      full_tgt = full_tgt[:-excess]
      report.add("truncated", ex.id)
    out.ids.append(ex.id)
    out.source.append(np.asarray(full_src, np.int32))
    out.target.append(np.asarray(full_tgt, np.int32))
    tasks.append(ex.task)
  out.task = np.asarray(tasks, np.int32)
  _warn(report, "truncated", f"longer than max_length={max_length} had their target cut")
  _warn(report, "too_long", f"longer than max_length={max_length} were dropped")
  _warn(report, "source_truncated", f"had their source cut to {max_source_length} tokens")
  _warn(report, "target_truncated", f"had their target cut to {max_target_length} tokens")
  _warn(report, "empty_target", "with an empty target were dropped")
  return out


def encode_eval(records: Sequence[EvalRecord], tokenizer, *, max_source_length: int,
                sep: Sequence[int] | None = None, leading_space: bool = True) -> Encoded:
  """Tokenizes generation prompts: `encode(' ' + source)` cut to `max_source_length` tokens
  (counted as `source_truncated`), then the separator. Targets are empty."""
  sep = list(sep) if sep is not None else separator_ids(tokenizer)
  space = " " if leading_space else ""
  report = BadInputReport("tokenization")
  src_all = _encode_all(tokenizer, [space + r.source for r in records])
  sources = []
  for r, src in zip(records, src_all):
    if len(src) > max_source_length:
      src = src[:max_source_length]
      report.add("source_truncated", r.id)
    sources.append(np.asarray(src + sep, np.int32))
  _warn(report, "source_truncated", f"had their source cut to {max_source_length} tokens")
  return Encoded([r.id for r in records], sources, [np.zeros(0, np.int32)] * len(records),
                 np.asarray([r.task for r in records], np.int32),
                 [tuple(r.references) for r in records], report)
