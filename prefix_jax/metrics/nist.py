"""NIST (Doddington 2002) with the semantics of mteval-v13a.pl as the E2E challenge ran it.

mteval-v13a's NIST, for each n-gram order n <= 5:
  info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn)), counts taken over all references of
                 the corpus (for unigrams the denominator is the total reference word count);
  score        = sum_n [sum of info over clipped matches / number of hypothesis n-grams]
                 * length_penalty(hypothesis words / average reference length),
where a hypothesis n-gram is clipped at its largest count in any one reference of its input, and
the average reference length is (all reference words) / (number of reference sets).

tuetschek/e2e-metrics gives mteval a variable number of references by padding every input to the
largest reference count with empty references, so the number of reference sets is the maximum
number of references of any input (its own Python port, pymteval.py, notes that this differs from
a per-input average). We reproduce that: it is how the published E2E numbers were computed.

n-grams and the length penalty are nltk's (`nltk.util.ngrams`, `nist_score.nist_length_penalty`,
whose beta is mteval's). nltk's `corpus_nist` itself is not used: with several references it keeps
the single best reference per hypothesis and order, and takes that reference's length for the
penalty, so it departs from mteval on multi-reference data (they agree on single references).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from nltk.translate.nist_score import nist_length_penalty
from nltk.util import ngrams


def _ngram_counts(tokens: Sequence[str], max_order: int) -> Counter:
  counts: Counter = Counter()
  for n in range(1, max_order + 1):
    counts.update(ngrams(tokens, n))
  return counts


def corpus_nist(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]],
                max_order: int = 5) -> float:
  """NIST of tokenized hypotheses against their tokenized reference lists (see module doc)."""
  # Information weights from every reference n-gram of the corpus.
  ref_counts: Counter = Counter()
  ref_words = 0
  for refs in references:
    for ref in refs:
      ref_counts.update(_ngram_counts(ref, max_order))
      ref_words += len(ref)

  def info(ngram: tuple[str, ...]) -> float:
    context = ref_counts[ngram[:-1]] if len(ngram) > 1 else ref_words
    return math.log2(context / ref_counts[ngram])

  match_info = [0.0] * (max_order + 1)
  hyp_ngrams = [0] * (max_order + 1)
  hyp_words = 0
  for hyp, refs in zip(hypotheses, references):
    hyp_words += len(hyp)
    for n in range(1, max_order + 1):
      hyp_ngrams[n] += max(len(hyp) - n + 1, 0)
    clip: Counter = Counter()
    for ref in refs:
      clip |= _ngram_counts(ref, max_order)  # elementwise max over the references
    for ngram, count in _ngram_counts(hyp, max_order).items():
      if ngram in clip:
        match_info[len(ngram)] += info(ngram) * min(count, clip[ngram])

  precision = sum(match_info[n] / max(hyp_ngrams[n], 1) for n in range(1, max_order + 1))
  num_reference_sets = max(len(refs) for refs in references)
  avg_ref_len = ref_words / num_reference_sets
  if avg_ref_len == 0:
    return 0.0
  return precision * nist_length_penalty(avg_ref_len, hyp_words)
