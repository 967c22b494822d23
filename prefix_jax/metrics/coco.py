"""ROUGE-L and CIDEr as the MS-COCO caption evaluation computes them (pycocoevalcap).

Both expect PTB-tokenized text (see `ptb.py`).
ROUGE-L: per input, F-measure (beta = 1.2) of the best LCS precision and the best LCS recall over
its references; the corpus score is the mean over inputs.
CIDEr: pycocoevalcap's CIDEr-D (n <= 4, clipped tf-idf cosine, Gaussian length penalty with sigma
6, x10), with document frequencies taken from the references of the scored corpus itself.
"""
from __future__ import annotations

from collections.abc import Sequence

from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge


def _as_coco(predictions: Sequence[str], references: Sequence[Sequence[str]]):
  res = {i: [pred] for i, pred in enumerate(predictions)}
  gts = {i: list(refs) for i, refs in enumerate(references)}
  return gts, res


def coco_rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
  """Mean per-input ROUGE-L F (beta 1.2) in [0, 1]."""
  score, _ = Rouge().compute_score(*_as_coco(predictions, references))
  return float(score)


def coco_cider(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
  """Corpus CIDEr-D (unbounded; 10 means a perfect match for every input)."""
  score, _ = Cider().compute_score(*_as_coco(predictions, references))
  return float(score)
