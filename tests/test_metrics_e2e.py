"""The E2E suite on a small fixed system output, against published and hand-computed values.

Fixed output: the example of bckim92/language-evaluation's README (predictions "i am a boy",
"she is a girl"; references "am i a boy ?", "is she a girl ?"), whose published MS-COCO caption
evaluation results (the same PTB tokenizer + METEOR 1.5 + ROUGE-L + CIDEr that e2e-metrics runs)
are METEOR 0.43354749322305886, ROUGE_L 0.75, CIDEr 3.333333333333333: README.md at commit
695d03e35d348ba213ba2dea8a9e1718e8484843 of https://github.com/bckim92/language-evaluation
(`CocoEvaluator` example; an earlier README, commit 352c6f5b, shows other values). BLEU and NIST are
hand-computed with mteval-v13a's rules below.
"""
import math

import pytest

from prefix_jax import metrics
from prefix_jax.metrics import coco, ptb

PREDICTIONS = ["i am a boy", "she is a girl"]
REFERENCES = [["am i a boy ?"], ["is she a girl ?"]]


def _mteval_bleu():
  # Tokens: hypotheses 4 + 4, references 5 + 5 ("?" is a token). Matches: unigrams 8/8, bigrams
  # 2/6 ("a boy", "a girl"), trigrams 0/4 and 4-grams 0/2, which mteval smooths to 1/(2*4) and
  # 1/(4*2). BP = exp(1 - 10/8).
  return 100 * math.exp(1 - 10 / 8) * (1 * 2 / 6 * 1 / 8 * 1 / 8) ** 0.25


def _mteval_nist():
  # 10 reference words; "a" and "?" occur twice, every other word once. Matched unigrams: six
  # words with info log2(10/1) and "a" twice with info log2(10/2), over 8 hypothesis unigrams.
  # Matched bigrams "a boy", "a girl": info log2(count(a) / count(a boy)) = 1 each, over 6.
  # LP at ratio 8/10.
  beta = -math.log(0.5) / math.log(1.5) ** 2
  unigram = (6 * math.log2(10) + 2 * math.log2(5)) / 8
  return (unigram + 2 / 6) * math.exp(-beta * math.log(0.8) ** 2)


def test_e2e_scores_of_the_fixed_output():
  scores = metrics.score("e2e", PREDICTIONS, REFERENCES)
  assert set(scores) == {"bleu", "nist", "meteor", "rouge_l", "cider"}
  assert scores["bleu"] == pytest.approx(_mteval_bleu(), rel=1e-9)
  assert scores["nist"] == pytest.approx(_mteval_nist(), rel=1e-9)
  assert scores["meteor"] == pytest.approx(0.43354749322305886, abs=1e-9)
  assert scores["rouge_l"] == pytest.approx(0.75, abs=1e-12)
  assert scores["cider"] == pytest.approx(3.333333333333333, abs=1e-9)


def test_e2e_is_case_and_punctuation_insensitive_and_perfect_output_is_perfect():
  refs = [["The Eagle is a coffee shop near Burger King.", "Near Burger King, there is The Eagle."],
          ["Zizzi is a cheap pub in the city centre."]]
  shouted = ["THE EAGLE IS A COFFEE SHOP NEAR BURGER KING.", "zizzi is a cheap pub in the city centre"]
  scores = metrics.score("e2e", shouted, refs)
  # BLEU: hypotheses 10 + 9 tokens (input 1 lacks the final "."), closest references 10 + 10;
  # every n-gram matches, so only the brevity penalty remains.
  assert scores["bleu"] == pytest.approx(100 * math.exp(1 - 20 / 19), rel=1e-9)
  assert scores["rouge_l"] == pytest.approx(1.0)  # PTB drops "." and lowercases
  assert scores["meteor"] == pytest.approx(1.0, abs=0.01)


def test_ptb_tokenization_as_coco():
  out = ptb.ptb_tokenize(["The Eagle, near Burger King.", "", "It's (really) \"cheap\"!", ""])
  # Lowercased, punctuation dropped, empty lines kept in place; "-lrb-" survives as in COCO.
  assert out == ["the eagle near burger king", "", "it 's -lrb- really -rrb- cheap", ""]


def test_coco_rouge_l_uses_beta_1_2():
  # LCS 2: P = 2/4, R = 2/2; F = (1 + 1.2^2) P R / (R + 1.2^2 P).
  expected = (1 + 1.44) * 0.5 * 1.0 / (1.0 + 1.44 * 0.5)
  assert coco.coco_rouge_l(["a b c d"], [["a b"]]) == pytest.approx(expected)
  # Best precision and best recall are taken over the references separately.
  assert coco.coco_rouge_l(["a b c d"], [["a b", "x a b c d y z w"]]) == pytest.approx(
      (1 + 1.44) * 1.0 * 1.0 / (1.0 + 1.44 * 1.0))


def test_coco_cider_is_10_for_copies_of_distinct_references():
  # Every n-gram (n <= 4) of each sentence occurs in one of the two inputs: idf log(2) > 0, the
  # tf-idf vectors equal the reference's, cosine 1 for n = 1..4, no length penalty -> 10.
  sents = ["the eagle is a pub", "zizzi serves cheap food"]
  assert coco.coco_cider(sents, [[s] for s in sents]) == pytest.approx(10.0)
  # An empty hypothesis scores 0 without failing.
  assert coco.coco_cider(["", sents[1]], [[s] for s in sents]) == pytest.approx(5.0)


def test_empty_prediction_is_scored_as_empty():
  scores = metrics.score("e2e", ["", "she is a girl"], REFERENCES)
  full = metrics.score("e2e", PREDICTIONS, REFERENCES)
  for name in ("bleu", "nist", "meteor", "rouge_l", "cider"):
    assert math.isfinite(scores[name])
    assert scores[name] < full[name]
