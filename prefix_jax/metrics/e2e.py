"""The E2E NLG challenge's five metrics, as tuetschek/e2e-metrics (`measure_scores.py`) defines them.

- BLEU, NIST: mteval-v13a. Text is lowercased (ASCII only: mteval's `tr/[A-Z]/[a-z]/`, run without
  `-c`) and tokenized with mteval's default rules (sacrebleu's '13a' tokenizer is a port of them).
  BLEU is sacrebleu's corpus BLEU, whose defaults are mteval's (closest reference length, 'exp'
  smoothing); NIST is `nist.corpus_nist`.
- METEOR, ROUGE-L, CIDEr: the MS-COCO caption evaluation (pycocoevalcap) on PTB-tokenized,
  lowercased text with punctuation removed: METEOR 1.5 (Java; the jar ships in the pycocoevalcap
  wheel), ROUGE-L and CIDEr-D in Python.

Scales: BLEU 0-100 (the paper's tables; mteval prints it as a fraction), NIST and CIDEr as printed
by the E2E script, METEOR and ROUGE-L in [0, 1].
"""
from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from prefix_jax.metrics import bleu, coco, meteor, nist, ptb
from prefix_jax.metrics.inputs import check_inputs
from prefix_jax.metrics.names import METRICS, chosen
from prefix_jax.metrics.results import Scores

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def mteval_lowercase(text: str) -> str:
  """mteval-v13a's case folding: ASCII letters only."""
  return text.translate(_ASCII_LOWER)


def mteval_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
  """{'bleu', 'nist'} with mteval-v13a's case folding and tokenization."""
  preds = [mteval_lowercase(p) for p in predictions]
  refs = [[mteval_lowercase(r) for r in rs] for rs in references]
  tokenize = Tokenizer13a()
  nist_score = nist.corpus_nist([tokenize(p.rstrip()).split() for p in preds],
                                [[tokenize(r.rstrip()).split() for r in rs] for rs in refs])
  return {"bleu": bleu.corpus_bleu(preds, refs, tokenize="13a"), "nist": nist_score}


def coco_scores(predictions: Sequence[str], references: Sequence[Sequence[str]],
                only: frozenset[str] | None = None) -> dict[str, float]:
  """{'meteor', 'rouge_l', 'cider'} (those in `only`, if given) on PTB-tokenized text, as the
  MS-COCO evaluation runs them."""
  flat_refs = [r for rs in references for r in rs]
  tokens = ptb.ptb_tokenize([*predictions, *flat_refs])
  preds, flat = tokens[:len(predictions)], tokens[len(predictions):]
  refs, start = [], 0
  for rs in references:
    refs.append(flat[start:start + len(rs)])
    start += len(rs)
  scorers = {"meteor": meteor.corpus_meteor, "rouge_l": coco.coco_rouge_l,
             "cider": coco.coco_cider}
  return {name: fn(preds, refs) for name, fn in chosen(scorers, only).items()}


def score(predictions: Sequence[str], references: Sequence[Sequence[str]],
          only: frozenset[str] | None = None) -> Scores:
  """{'bleu', 'nist', 'meteor', 'rouge_l', 'cider'} (those in `only`, if given) of the outputs
  against their references; the PTB tokenizer runs only for the last three."""
  check_inputs(predictions, references)
  want = set(METRICS["e2e"] if only is None else only)
  out = mteval_scores(predictions, references) if want & {"bleu", "nist"} else {}
  if want & {"meteor", "rouge_l", "cider"}:
    out.update(coco_scores(predictions, references, only))
  return Scores(chosen(out, only))
