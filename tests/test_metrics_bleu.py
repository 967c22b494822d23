"""BLEU and TER wrappers against sacrebleu's own test vectors, and hand-computed BLEU cases."""
import math

import pytest

from prefix_jax.metrics import bleu, e2e, ter

# From mjpost/sacrebleu, test/test_bleu.py (`_refs`, `_hyps`, `test_corpus_bleu_cases`). sacrebleu
# takes reference *streams*; our API takes one reference list per input, hence the transpose.
_REF_STREAMS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
_HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
_REFS = [list(refs) for refs in zip(*_REF_STREAMS)]


@pytest.mark.parametrize("hyps, kwargs, expected", [
    (_HYPS, {}, 48.530827),
    (["", "", ""], {}, 0.0),
    (_HYPS, {"tokenize": "none"}, 49.1919566),
    (_HYPS, {"tokenize": "13a"}, 48.530827),
    (_HYPS, {"tokenize": "intl"}, 43.91623493),
])
def test_bleu_matches_sacrebleu_test_vectors(hyps, kwargs, expected):
  assert bleu.corpus_bleu(hyps, _REFS, **kwargs) == pytest.approx(expected, abs=1e-6)


def test_bleu_variable_reference_counts_hand_computed():
  # Input 0 has one reference, input 1 two. Hypothesis lengths 1 + 5 = 6; closest reference
  # lengths 3 + 5 = 8; every hypothesis n-gram matches -> BLEU = 100 * exp(1 - 8/6). Padding the
  # missing reference with '' (length 0, closer to 1 than 3) would give BP = 1 and BLEU = 100.
  hyps = ["a", "d e f g h"]
  refs = [["a b c"], ["d e f g h", "d e f g h i j"]]
  assert bleu.corpus_bleu(hyps, refs) == pytest.approx(100 * math.exp(1 - 8 / 6), abs=1e-9)


def test_bleu_case_sensitivity_follows_the_suite():
  preds, refs = ["The Eagle is a pub near Burger King"], [["the eagle is a pub near burger king"]]
  assert bleu.corpus_bleu(preds, refs) < 50
  assert bleu.corpus_bleu(preds, refs, lowercase=True) == pytest.approx(100.0)
  assert e2e.mteval_scores(preds, refs)["bleu"] == pytest.approx(100.0)


# From mjpost/sacrebleu, test/test_ter.py (`test_cases`; expected values are fractions there too).
_TER_DE_HYPS = [
    'wählen Sie " Bild neu berechnen , " um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit das Bild ungefähr dieselbe Größe aufweist wie die andere Größe .',
    'wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option " Alle Aufgaben aktualisieren . "',
    'klicken Sie auf der Registerkarte " Optionen " auf die Schaltfläche " Benutzerdefiniert " und geben Sie Werte für " Fehlerkorrektur-Level " und " Y / X-Verhältnis " ein .',
    'Sie können beispielsweise ein Dokument erstellen , das ein Auto über die Bühne enthält .',
    'wählen Sie im Dialogfeld " Neu aus Vorlage " eine Vorlage aus und klicken Sie auf " Neu . "',
]
_TER_DE_REFS = [
    'wählen Sie " Bild neu berechnen , " um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit die Darstellung des Bildes in einer anderen Größe beibehalten wird .',
    'wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option " Alle Aufgaben aktualisieren . "',
    'klicken Sie auf der Registerkarte " Optionen " auf die Schaltfläche " Benutzerdefiniert " und geben Sie für " Fehlerkorrektur-Level " und " Y / X-Verhältnis " niedrigere Werte ein .',
    'Sie können beispielsweise ein Dokument erstellen , das ein Auto enthalt , das sich über die Bühne bewegt .',
    'wählen Sie im Dialogfeld " Neu aus Vorlage " eine Vorlage aus und klicken Sie auf " Neu . "',
]


@pytest.mark.parametrize("hyps, refs, expected", [
    (["aaaa bbbb cccc dddd"], ["aaaa bbbb cccc dddd"], 0),
    (["dddd eeee ffff"], ["aaaa bbbb cccc"], 1),
    ([""], ["a"], 1),
    (["d e f g h a b c"], ["a b c d e f g h"], 1 / 8),
    (_TER_DE_HYPS, _TER_DE_REFS, 0.136),
])
def test_ter_matches_sacrebleu_test_vectors(hyps, refs, expected):
  assert ter.corpus_ter(hyps, [[r] for r in refs]) == pytest.approx(expected, abs=1e-5)


def test_ter_takes_the_best_of_several_references():
  # One reference is the hypothesis with a word dropped (1 edit), the other is unrelated. tercom
  # divides the edits of the best reference by the *average* reference length: 1 / ((4 + 3) / 2).
  assert ter.corpus_ter(["a b c d"], [["w x y z", "a b c"]]) == pytest.approx(1 / 3.5)
