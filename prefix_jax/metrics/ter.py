"""Corpus TER through sacrebleu, which reproduces tercom 0.7.25 (the WebNLG/DART scripts' tool)."""
from __future__ import annotations

from collections.abc import Sequence

import sacrebleu

from prefix_jax.metrics.inputs import reference_streams


def corpus_ter(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
  """TER as a fraction (tercom prints it so): total edits over the average reference length.

  Case-insensitive, like tercom's default; can exceed 1.
  """
  ter = sacrebleu.metrics.TER()
  return ter.corpus_score(list(predictions), reference_streams(references)).score / 100.0
