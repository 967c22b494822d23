"""NIST with mteval-v13a semantics: hand-computed cases and nltk's corpus_nist on single references.

Notation of the hand computations (mteval-v13a.pl, `compute_ngram_info`, `nist_score`):
info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn)) over all references (total reference words
for unigrams); NIST = sum_n matched info / hypothesis n-grams, times
LP = exp(-beta * ln(hyp words / average reference length)^2) when that ratio is below 1, where
beta = -ln(0.5) / ln(1.5)^2.
"""
import math

import pytest
from nltk.translate.nist_score import corpus_nist as nltk_corpus_nist

from prefix_jax.metrics.nist import corpus_nist

BETA = -math.log(0.5) / math.log(1.5) ** 2


def _toks(sentences):
  return [s.split() for s in sentences]


def test_single_reference_hand_computed():
  # Reference "a b c": info(a) = info(b) = log2(3/1); info(a b) = log2(count(a) / count(a b)) = 0.
  # Unigram term: 2 * log2(3) / 2 hypothesis unigrams; bigram term 0 / 1. The length ratio is 2/3
  # and ln(2/3)^2 = ln(1.5)^2, so LP = exp(ln 0.5) = 0.5 exactly.
  assert corpus_nist([["a", "b"]], [[["a", "b", "c"]]]) == pytest.approx(0.5 * math.log2(3))


def test_average_reference_length_counts_padded_reference_sets():
  # e2e-metrics pads every input to the largest reference count (2 here) with empty references,
  # so the average reference length is all reference words / 2 = (2 + 2 + 4) / 2 = 4.
  # Reference words 8: info(a) = info(b) = log2(8/2) = 2, info(c) = log2(8/1) = 3, info(a b) = 0.
  # Unigram term (2 + 2 + 3) / 3; bigram term 0 / 1; ratio 3 / 4.
  hyps = _toks(["a b", "c"])
  refs = [_toks(["a b", "a b"]), _toks(["c d e f"])]
  expected = 7 / 3 * math.exp(-BETA * math.log(3 / 4) ** 2)
  assert corpus_nist(hyps, refs) == pytest.approx(expected, rel=1e-12)
  # A per-input average reference length (2 + 4 = 6, ratio 1/2) would give a much lower score.
  assert corpus_nist(hyps, refs) > 7 / 3 * math.exp(-BETA * math.log(1 / 2) ** 2) + 1


def test_clipping_is_against_the_largest_count_in_any_one_reference():
  # "x x" matches twice only if one reference holds two x's. References "x y" and "x z": clip 1.
  # Reference words 4, count(x) = 2: info(x) = log2(4/2) = 1. Unigram term 1 / 2 (bigram "x x"
  # unmatched). Average reference length 4 / 2 = 2 = hypothesis length, so LP = 1.
  assert corpus_nist(_toks(["x x"]), [_toks(["x y", "x z"])]) == pytest.approx(0.5)


def test_hypothesis_longer_than_references_has_no_penalty_and_empty_scores_zero():
  refs = [_toks(["a b c"])]
  assert corpus_nist(_toks(["a b c d e f"]), refs) == pytest.approx(
      (3 * math.log2(3) + 0 + 0) / 6 + 0 / 5)  # bigram and trigram infos are log2(1/1) = 0
  assert corpus_nist([[]], refs) == 0.0


SYSTEM = [
    "the eagle is a coffee shop near burger king in the riverside area",
    "the golden curry is a family friendly restaurant serving french food",
    "there is a cheap pub called the wrestlers near the city centre",
    "browns cambridge serves italian food and has a low customer rating",
]
REFERENCES = [
    "the eagle coffee shop is in riverside near burger king and is family friendly",
    "the golden curry serves french food and is family friendly with a high rating",
    "the wrestlers is a cheap pub in the city centre",
    "browns cambridge is an italian restaurant with a low customer rating",
]


def test_equals_nltk_corpus_nist_with_one_reference_per_input():
  # With one reference nltk's best-reference choice and length are mteval's, so the two must agree.
  hyps, refs = _toks(SYSTEM), [[r] for r in _toks(REFERENCES)]
  assert corpus_nist(hyps, refs) == pytest.approx(nltk_corpus_nist(refs, hyps, n=5), rel=1e-12)
  # And the length penalty is live here (system output shorter than the references).
  short = [h[:5] for h in hyps]
  assert corpus_nist(short, refs) == pytest.approx(nltk_corpus_nist(refs, short, n=5), rel=1e-12)
