"""WebNLG 2017: BLEU, METEOR and TER on the seen (S), unseen (U) and all (A) categories.

Each subset is scored as its own corpus, as the challenge's scripts do (they split the output and
reference files by category before scoring), so the 'all' score is not an average of the others.
"""
from __future__ import annotations

from collections.abc import Sequence

from prefix_jax.metrics.data_to_text import bleu_meteor_ter
from prefix_jax.metrics.inputs import check_inputs
from prefix_jax.metrics.results import Scores

SUBSETS = ("seen", "unseen", "all")


def score(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
          seen: Sequence[bool], only: frozenset[str] | None = None) -> Scores:
  """Keys '<metric>_<subset>' for metric in bleu, meteor, ter (those in `only`, if given) and
  subset in seen, unseen, all.

  `seen[i]` tells whether input i belongs to a category seen in training. The keys of a subset
  with no input are left out (e.g. the dev set has only seen categories).
  """
  check_inputs(predictions, references)
  if isinstance(seen, str) or len(seen) != len(predictions):
    count = "a string" if isinstance(seen, str) else f"{len(seen)} flags"
    raise ValueError(f"`seen` must hold one bool per prediction: {count} for "
                     f"{len(predictions)} predictions")
  members = {"seen": [i for i, s in enumerate(seen) if s],
             "unseen": [i for i, s in enumerate(seen) if not s],
             "all": list(range(len(predictions)))}
  scores = Scores()
  for subset in SUBSETS:
    idx = members[subset]
    if not idx:
      continue
    values = bleu_meteor_ter([predictions[i] for i in idx], [references[i] for i in idx], only)
    scores.update({f"{name}_{subset}": value for name, value in values.items()})
  return scores
