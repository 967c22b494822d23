"""Corpus BLEU through sacrebleu, on per-input reference lists of any length."""
from __future__ import annotations

from collections.abc import Sequence

import sacrebleu

from prefix_jax.metrics.inputs import reference_streams


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
                lowercase: bool = False, tokenize: str = "13a") -> float:
  """sacrebleu's corpus BLEU (0-100) with its defaults: 13a tokenization (mteval-v13a's), the
  closest reference length for the brevity penalty and mteval's 'exp' smoothing."""
  bleu = sacrebleu.metrics.BLEU(lowercase=lowercase, tokenize=tokenize)
  return bleu.corpus_score(list(predictions), reference_streams(references)).score
