"""Checks on what is handed to the scorers, and the reshaping sacrebleu wants."""
from __future__ import annotations

from collections.abc import Sequence


def check_inputs(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
  """Raises a one-line `ValueError` unless there is one non-empty reference list per prediction.

  An empty string is a legal prediction (it scores as empty output); an empty predictions list
  is not.
  """
  if isinstance(predictions, str):
    raise ValueError("predictions must be a list of strings, got a single string")
  if len(predictions) == 0:
    raise ValueError(f"empty predictions list: nothing to score ({len(references)} reference lists)")
  if len(predictions) != len(references):
    raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists: "
                     "counts must match")
  for i, pred in enumerate(predictions):
    if not isinstance(pred, str):
      raise ValueError(f"prediction {i} is a {type(pred).__name__}, not a string")
  for i, refs in enumerate(references):
    if isinstance(refs, str):
      raise ValueError(f"references for input {i} must be a list of strings, got a single string")
    if len(refs) == 0:
      raise ValueError(f"references missing for input {i}: empty reference list")
    for ref in refs:
      if not isinstance(ref, str):
        raise ValueError(f"a reference for input {i} is a {type(ref).__name__}, not a string")


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
  """Per-input reference lists -> sacrebleu's reference streams (one per reference slot).

  Inputs with fewer references than the most are padded with None, which sacrebleu drops; an
  empty string would instead count as a real, empty reference.
  """
  width = max(len(refs) for refs in references)
  return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
