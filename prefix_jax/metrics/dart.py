"""DART: BLEU, METEOR and TER as its evaluation script computes them.

The script also reports MoverScore, BERTScore and BLEURT. Each needs neural model weights fetched
from a model hub at run time, which this project cannot do (no network but package registries),
so they are reported in `Scores.unavailable` with that reason instead of as numbers.
"""
from __future__ import annotations

from collections.abc import Sequence

from prefix_jax.metrics.data_to_text import bleu_meteor_ter
from prefix_jax.metrics.inputs import check_inputs
from prefix_jax.metrics.results import Scores

UNAVAILABLE = {
    "moverscore": "needs BERT weights from a model hub (not reachable offline)",
    "bertscore": "needs roberta-large weights from a model hub (not reachable offline)",
    "bleurt": "needs a BLEURT checkpoint download (not reachable offline)",
}


def score(predictions: Sequence[str], references: Sequence[Sequence[str]],
          only: frozenset[str] | None = None) -> Scores:
  """{'bleu', 'meteor', 'ter'} (those in `only`, if given), with `unavailable` naming the
  metrics that cannot be computed."""
  check_inputs(predictions, references)
  return Scores(bleu_meteor_ter(predictions, references, only), unavailable=UNAVAILABLE)
