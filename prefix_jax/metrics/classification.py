"""Accuracy for classification tasks cast as generation (e.g. SST-2 labels)."""
from __future__ import annotations

from collections.abc import Sequence

from prefix_jax.metrics.inputs import check_inputs
from prefix_jax.metrics.results import Scores


def score(predictions: Sequence[str], references: Sequence[Sequence[str]],
          only: frozenset[str] | None = None) -> Scores:
  """{'accuracy'} in [0, 1]: a prediction is right when, stripped of surrounding whitespace, it
  equals one of its references (usually the single gold label). Matching is case-sensitive.
  `only` is accepted for a uniform call: 'accuracy' is the one metric."""
  del only
  check_inputs(predictions, references)
  right = sum(pred.strip() in {r.strip() for r in refs}
              for pred, refs in zip(predictions, references))
  return Scores({"accuracy": right / len(predictions)})
