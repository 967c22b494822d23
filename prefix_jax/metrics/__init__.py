"""Evaluation metrics for the prefix-tuning paper's tables (Li & Liang 2021), computed in-process.

`score(task, predictions, references, **extra)` dispatches to one suite:

  task             keys                                          extra
  'e2e'            bleu nist meteor rouge_l cider                -
  'webnlg'         {bleu,meteor,ter}_{seen,unseen,all}           seen: one bool per input
  'dart'           bleu meteor ter (+ Scores.unavailable)        -
  'xsum'           rouge_1 rouge_2 rouge_l                       use_stemmer (default True)
  'classification' accuracy                                      -
  'sst2'           accuracy (the label words as references)      -

`only=` (names of the task's metrics, `names.METRICS`) scores a subset and skips the rest:
`config.metrics` (see `names.py`).

`references[i]` is the list of references of input i (one or more). Scales: BLEU 0-100; NIST and
CIDEr unbounded; METEOR, ROUGE, TER and accuracy as fractions (TER can exceed 1). METEOR and the
E2E suite's PTB tokenizer run Java jars that ship in the pycocoevalcap wheel, so they need `java`.
Bad input (no predictions, counts that differ, an input without references) raises ValueError.
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence

from prefix_jax.metrics.names import METRICS, check_subset
from prefix_jax.metrics.results import Scores, read_predictions, read_references, write_scores

# task -> the module of its suite (its `score`). A suite is imported when first used: nltk (NIST,
# ROUGE's stemmer) and scipy take about a second to import, which a process that only trains
# (the trainer, a sweep's cells before they evaluate) need not pay.
SUITES: dict[str, str] = {
    "e2e": "e2e",
    "webnlg": "webnlg",
    "dart": "dart",
    "xsum": "rouge",
    "classification": "classification",
    "sst2": "classification",
}


def score(task: str, predictions: Sequence[str], references: Sequence[Sequence[str]], *,
          only=None, **extra) -> Scores:
  """Scores `predictions` against `references` with `task`'s metrics (see the module doc), or
  only the names in `only`."""
  if task not in SUITES:
    raise ValueError(f"unknown task {task!r}: one of {', '.join(SUITES)}")
  only = check_subset(task, only)
  suite = importlib.import_module(f"{__name__}.{SUITES[task]}")
  return suite.score(predictions, references, only=only, **extra)


__all__ = ["METRICS", "SUITES", "Scores", "read_predictions", "read_references", "score",
           "write_scores"]
