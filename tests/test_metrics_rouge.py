"""XSUM ROUGE against rouge-score's own known pairs, and classification accuracy."""
import pytest

from prefix_jax import metrics


# Known pairs from google-research/google-research rouge/rouge_scorer_test.py (shipped with the
# rouge-score package): testRouge1, testRouge2, testRougeLConsecutive, testRougeLNonConsecutive,
# testRougeAllMulti (target(s), prediction, expected F-measures).
@pytest.mark.parametrize("targets, prediction, expected", [
    (["testing one two"], "testing", {"rouge_1": 1 / 2}),
    (["testing one two"], "testing one", {"rouge_2": 2 / 3, "rouge_l": 4 / 5}),
    (["testing one two"], "testing two", {"rouge_l": 4 / 5}),
    (["first text", "first something"], "text first",
     {"rouge_1": 1.0, "rouge_2": 0.0, "rouge_l": 0.5}),
])
def test_rouge_score_known_pairs(targets, prediction, expected):
  scores = metrics.score("xsum", [prediction], [targets])
  for name, value in expected.items():
    assert scores[name] == pytest.approx(value)


def test_rouge_corpus_mean_and_stemming():
  preds = ["testing one", "Running dogs"]
  refs = [["testing one two"], ["run dog"]]
  stemmed = metrics.score("xsum", preds, refs)
  # Porter stemming makes "Running dogs" match "run dog" fully.
  assert stemmed["rouge_1"] == pytest.approx((4 / 5 + 1.0) / 2)
  assert stemmed["rouge_2"] == pytest.approx((2 / 3 + 1.0) / 2)
  plain = metrics.score("xsum", preds, refs, use_stemmer=False)
  assert plain["rouge_1"] == pytest.approx((4 / 5 + 0.0) / 2)


def test_rouge_empty_prediction_scores_zero():
  assert metrics.score("xsum", [""], [["testing one two"]])["rouge_l"] == 0.0


def test_accuracy():
  scores = metrics.score("classification", ["positive", " negative\n", "Positive", "negative"],
                         [["positive"], ["negative"], ["positive"], ["positive"]])
  assert scores == {"accuracy": 0.5}
