"""BLEU, METEOR and TER as the WebNLG 2017 and DART evaluation scripts compute them.

The scripts run multi-bleu.perl (case-sensitive, whitespace tokens), METEOR 1.5 with
`-l en -norm`, and tercom 0.7.25 (case-insensitive). Here:
- BLEU: sacrebleu's corpus BLEU, case-sensitive, 0-100, with its standard 13a tokenization. On
  references that are already tokenized this changes little (it splits a period or comma from a
  preceding non-digit: "U.S." -> "U . S ."), and it keeps detokenized outputs comparable. Unlike
  multi-bleu.perl it smooths (mteval's 'exp'), which only matters when no 4-gram matches at all.
- METEOR: the same jar and options (`meteor.py`), a fraction.
- TER: sacrebleu's port of tercom, a fraction.
"""
from __future__ import annotations

from collections.abc import Sequence

from prefix_jax.metrics import bleu, meteor, ter
from prefix_jax.metrics.names import chosen


def bleu_meteor_ter(predictions: Sequence[str], references: Sequence[Sequence[str]],
                    only: frozenset[str] | None = None) -> dict[str, float]:
  """{'bleu', 'meteor', 'ter'} (those in `only`, if given); inputs are assumed checked."""
  scorers = {"bleu": bleu.corpus_bleu, "meteor": meteor.corpus_meteor, "ter": ter.corpus_ter}
  return {name: fn(predictions, references) for name, fn in chosen(scorers, only).items()}
