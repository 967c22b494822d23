"""`config.metrics`: a run scores only the named metrics of its task's suite, with the values
the whole suite gives, and starts no Java process when none of them needs one; a name the suite
lacks fails before training or decoding, in one line."""
import pytest

from prefix_jax import metrics
from prefix_jax.errors import ConfigError
from prefix_jax.metrics.names import METRICS, config_subset
from prefix_jax.train.config_base import base_config
from prefix_jax.train.loop import validate_config
from test_metrics_e2e import PREDICTIONS, REFERENCES, _mteval_bleu, _mteval_nist


@pytest.fixture
def no_java(monkeypatch):
  """A `java` that cannot start: a suite that asked for one would fail."""
  monkeypatch.setenv("PREFIX_JAX_JAVA", "/nonexistent/java")


def test_e2e_bleu_and_nist_alone_need_no_java(no_java):
  scores = metrics.score("e2e", PREDICTIONS, REFERENCES, only={"bleu", "nist"})
  assert set(scores) == {"bleu", "nist"}
  assert scores["bleu"] == pytest.approx(_mteval_bleu(), rel=1e-9)  # the whole suite's values
  assert scores["nist"] == pytest.approx(_mteval_nist(), rel=1e-9)
  with pytest.raises(OSError):  # the PTB tokenizer is Java: rouge_l does start it
    metrics.score("e2e", PREDICTIONS, REFERENCES, only={"bleu", "rouge_l"})


def test_e2e_coco_subset_equals_the_whole_suite():
  scores = metrics.score("e2e", PREDICTIONS, REFERENCES, only={"rouge_l", "cider"})
  assert scores == pytest.approx({"rouge_l": 0.75, "cider": 3.333333333333333}, abs=1e-9)


def test_webnlg_and_dart_score_each_named_metric_on_every_subset(no_java):
  preds = ["Alan Bean was born in Wheeler , Texas .", "Aarhus airport serves Aarhus ."]
  refs = [["Alan Bean was born in Wheeler, Texas."], ["Aarhus Airport serves the city of Aarhus."]]
  web = metrics.score("webnlg", preds, refs, seen=[True, False], only={"bleu", "ter"})
  assert set(web) == {f"{m}_{s}" for m in ("bleu", "ter") for s in ("seen", "unseen", "all")}
  dart = metrics.score("dart", preds, refs, only={"ter"})
  assert set(dart) == {"ter"} and dart["ter"] == pytest.approx(web["ter_all"])
  assert set(dart.unavailable) == {"bertscore", "bleurt", "moverscore"}


@pytest.mark.parametrize("task", sorted(METRICS))
def test_every_name_of_a_suite_alone_gives_that_key(task, no_java):
  """Names that need no Java, each alone (METEOR's are covered above by the full suites)."""
  preds, refs = ["a cat sat"], [["a cat sat down"]]
  extra = {"seen": [True]} if task == "webnlg" else {}
  for name in METRICS[task]:
    if name in ("meteor", "rouge_l", "cider") and task in ("e2e", "webnlg", "dart"):
      continue
    keys = set(metrics.score(task, preds, refs, only={name}, **extra))
    assert keys == ({f"{name}_seen", f"{name}_all"} if task == "webnlg" else {name}), (task, name)


@pytest.mark.parametrize("text, expected", [("", None), ("bleu", {"bleu"}),
                                            ("bleu+nist", {"bleu", "nist"}),
                                            (" bleu  cider ", {"bleu", "cider"})])
def test_config_value(text, expected):
  config = base_config()
  config.metrics = text
  assert config_subset(config) == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize("text", ["blue", "bleu+rouge_1", "+"])
def test_a_name_the_suite_lacks_fails_config_validation_in_one_line(text):
  config = base_config()
  config.metrics = text
  with pytest.raises(ConfigError) as err:
    validate_config(config)
  assert "\n" not in str(err.value) and "bleu+nist+meteor+rouge_l+cider" in str(err.value)
