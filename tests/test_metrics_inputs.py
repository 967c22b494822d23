"""Bad input raises one clear line; prediction/reference files and scores.json round-trip."""
import json

import pytest

from prefix_jax import metrics

REFS = [["a b c"], ["d e f"]]


@pytest.mark.parametrize("task", ["e2e", "dart", "xsum", "classification"])
def test_empty_predictions_list(task):
  with pytest.raises(ValueError, match=r"^empty predictions list: nothing to score \(2 reference lists\)$"):
    metrics.score(task, [], REFS)


@pytest.mark.parametrize("task", ["e2e", "dart", "xsum", "classification"])
def test_count_mismatch_names_both_counts(task):
  with pytest.raises(ValueError, match=r"^3 predictions but 2 reference lists: counts must match$"):
    metrics.score(task, ["a", "b", "c"], REFS)


@pytest.mark.parametrize("task", ["e2e", "dart", "xsum", "classification"])
def test_missing_references_name_the_input(task):
  with pytest.raises(ValueError, match=r"^references missing for input 1: empty reference list$"):
    metrics.score(task, ["a", "b", "c"], [["a"], [], ["c"]])


def test_webnlg_checks_inputs_too():
  with pytest.raises(ValueError, match="references missing for input 0"):
    metrics.score("webnlg", ["a"], [[]], seen=[True])


def test_other_malformed_inputs():
  with pytest.raises(ValueError, match="single string"):
    metrics.score("xsum", "a b c", REFS)
  with pytest.raises(ValueError, match="references for input 0 must be a list"):
    metrics.score("xsum", ["a", "b"], ["a b c", "d e f"])
  with pytest.raises(ValueError, match="unknown task 'e2f'"):
    metrics.score("e2f", ["a"], [["a"]])


def test_empty_string_prediction_is_legal():
  assert metrics.score("classification", [""], [["positive"]]) == {"accuracy": 0.0}
  assert metrics.score("dart", [""], [["a b c"]])["ter"] == pytest.approx(1.0)


def test_read_predictions_keeps_empty_lines(tmp_path):
  path = tmp_path / "out.txt"
  path.write_text("first\n\nthird\r\n", encoding="utf-8")
  assert metrics.read_predictions(path) == ["first", "", "third"]
  assert metrics.read_predictions(path, expected_count=3) == ["first", "", "third"]
  with pytest.raises(ValueError, match=r"out.txt has 3 predictions but there are 4 references$"):
    metrics.read_predictions(path, expected_count=4)
  (tmp_path / "empty.txt").write_text("", encoding="utf-8")
  assert metrics.read_predictions(tmp_path / "empty.txt") == []


def test_prediction_file_with_a_different_line_count_fails_to_score(tmp_path):
  path = tmp_path / "out.txt"
  path.write_text("a b c\n", encoding="utf-8")
  with pytest.raises(ValueError, match="1 predictions but 2 reference lists"):
    metrics.score("xsum", metrics.read_predictions(path), REFS)


def test_read_references_e2e_format(tmp_path):
  path = tmp_path / "refs.txt"
  path.write_text("r1 a\nr1 b\n\nr2 a\n\n\nr3 a\nr3 b\nr3 c\n", encoding="utf-8")
  assert metrics.read_references(path) == [["r1 a", "r1 b"], ["r2 a"], ["r3 a", "r3 b", "r3 c"]]


def test_write_scores(tmp_path):
  path = metrics.write_scores(tmp_path / "run" / "scores.json", {"bleu": 70.25, "nist": 8})
  assert json.loads(open(path).read()) == {"bleu": 70.25, "nist": 8.0}
  with pytest.raises(ValueError, match="score ter is nan"):
    metrics.write_scores(tmp_path / "bad.json", {"ter": float("nan")})
