"""WebNLG seen/unseen/all split and the DART suite."""
import json

import pytest

from prefix_jax import metrics
from prefix_jax.metrics import bleu, meteor, ter

# Seen inputs are generated well, unseen ones badly, and the two are interleaved.
PREDICTIONS = [
    "Aarhus Airport serves the city of Aarhus .",
    "The runway of Aarhus Airport is 2776 metres long .",
    "He was a footballer .",
    "Alan Bean was born in Wheeler , Texas .",
    "It is a planet .",
]
REFERENCES = [
    ["Aarhus Airport serves the city of Aarhus .", "The city of Aarhus is served by Aarhus Airport ."],
    ["The runway length of Aarhus Airport is 2776 metres .", "Aarhus Airport 's runway is 2776 metres long ."],
    ["Aleksandr Chumakov was born in Moscow and plays for the national team ."],
    ["Alan Bean was born in Wheeler , Texas .", "Alan Bean 's birthplace is Wheeler , Texas ."],
    ["101 Helena has an orbital period of 1516.6700000000003 days and an apoapsis of 441092000 km ."],
]
SEEN = [True, True, False, True, False]


def _subset(idx):
  return [PREDICTIONS[i] for i in idx], [REFERENCES[i] for i in idx]


def test_split_equals_scoring_each_subset_separately():
  scores = metrics.score("webnlg", PREDICTIONS, REFERENCES, seen=SEEN)
  assert set(scores) == {f"{m}_{s}" for m in ("bleu", "meteor", "ter")
                         for s in ("seen", "unseen", "all")}
  for subset, idx in [("seen", [0, 1, 3]), ("unseen", [2, 4]), ("all", range(5))]:
    preds, refs = _subset(idx)
    assert scores[f"bleu_{subset}"] == pytest.approx(bleu.corpus_bleu(preds, refs), abs=1e-9)
    assert scores[f"meteor_{subset}"] == pytest.approx(meteor.corpus_meteor(preds, refs), abs=1e-9)
    assert scores[f"ter_{subset}"] == pytest.approx(ter.corpus_ter(preds, refs), abs=1e-9)
  # The constructed split really separates good from bad output.
  assert scores["bleu_seen"] > 60 > 10 > scores["bleu_unseen"]
  assert scores["meteor_seen"] > scores["meteor_all"] > scores["meteor_unseen"]
  assert scores["ter_seen"] < scores["ter_all"] < scores["ter_unseen"]


def test_split_hand_checked_extremes():
  # Seen outputs copy a reference: BLEU 100, TER 0. Unseen outputs share no word with their
  # (equally long) reference: BLEU 0, TER 1 (every word substituted).
  preds = ["a b c d e", "qq1 qq2 qq3 qq4", "f g h i j", "qq5 qq6 qq7 qq8"]
  refs = [["a b c d e"], ["ww1 ww2 ww3 ww4"], ["f g h i j"], ["ww5 ww6 ww7 ww8"]]
  scores = metrics.score("webnlg", preds, refs, seen=[True, False, True, False])
  assert scores["bleu_seen"] == pytest.approx(100.0)
  assert scores["ter_seen"] == pytest.approx(0.0)
  assert scores["bleu_unseen"] == pytest.approx(0.0)
  assert scores["ter_unseen"] == pytest.approx(1.0)
  assert scores["ter_all"] == pytest.approx(8 / 18)  # 8 edits over 18 reference words
  assert scores["meteor_seen"] > 0.9 and scores["meteor_unseen"] == pytest.approx(0.0)


def test_a_subset_without_inputs_is_left_out():
  scores = metrics.score("webnlg", PREDICTIONS[:2], REFERENCES[:2], seen=[True, True])
  assert set(scores) == {f"{m}_{s}" for m in ("bleu", "meteor", "ter") for s in ("seen", "all")}
  assert scores["bleu_seen"] == scores["bleu_all"]


def test_seen_flags_must_match_the_predictions():
  with pytest.raises(ValueError, match="4 flags for 5 predictions"):
    metrics.score("webnlg", PREDICTIONS, REFERENCES, seen=SEEN[:4])
  with pytest.raises(TypeError):
    metrics.score("webnlg", PREDICTIONS, REFERENCES)


def test_dart_reports_neural_metrics_as_unavailable(tmp_path):
  scores = metrics.score("dart", PREDICTIONS, REFERENCES)
  assert set(scores) == {"bleu", "meteor", "ter"}
  assert scores["bleu"] == pytest.approx(bleu.corpus_bleu(PREDICTIONS, REFERENCES))
  assert set(scores.unavailable) == {"bertscore", "bleurt", "moverscore"}
  assert all("offline" in reason for reason in scores.unavailable.values())
  written = json.loads(open(metrics.write_scores(tmp_path / "scores.json", scores)).read())
  assert written["bleu"] == pytest.approx(scores["bleu"])
  assert set(written["unavailable"]) == {"bertscore", "bleurt", "moverscore"}
