"""ROUGE-1/2/L for summarization (XSUM), with google-research's rouge-score.

As is standard for XSUM (and as rouge-score's own ROUGE-1.5.5 comparison does), words are
Porter-stemmed; rouge-score lowercases and keeps only [a-z0-9] tokens. Each input's F-measure is
taken against its best reference, and the corpus score is the mean over inputs, in [0, 1].
'rouge_l' is rouge-score's sentence-level rougeL (not the newline-split rougeLsum).
"""
from __future__ import annotations

from collections.abc import Sequence

from rouge_score import rouge_scorer

from prefix_jax.metrics.inputs import check_inputs
from prefix_jax.metrics.names import chosen
from prefix_jax.metrics.results import Scores

_TYPES = {"rouge_1": "rouge1", "rouge_2": "rouge2", "rouge_l": "rougeL"}


def score(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
          use_stemmer: bool = True, only: frozenset[str] | None = None) -> Scores:
  """{'rouge_1', 'rouge_2', 'rouge_l'} (those in `only`, if given): mean F-measures."""
  check_inputs(predictions, references)
  scorer = rouge_scorer.RougeScorer(list(_TYPES.values()), use_stemmer=use_stemmer)
  totals = dict.fromkeys(_TYPES, 0.0)
  for pred, refs in zip(predictions, references):
    result = scorer.score_multi(list(refs), pred)
    for key, rouge_type in _TYPES.items():
      totals[key] += result[rouge_type].fmeasure
  return Scores({key: total / len(predictions) for key, total in chosen(totals, only).items()})
