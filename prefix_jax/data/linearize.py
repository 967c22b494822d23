"""Structured inputs to text, as in the code of Li & Liang (2021), XiangLi1999/PrefixTuning.

E2E     `name : The Vaults | Type : pub | price : more than £30`  (MR order, keys renamed)
WebNLG  ` | Aarhus : leaderName : Jacob_Bundsgaard | Aarhus_Airport : cityServed : Aarhus`
        (their `LineByLineWebNLGTextDataset`: ' | ' before *every* triple, raw DBpedia text)
DART    `Mars Hill College : joined : 1973 | Mars Hill College : location : ...`
        (their `LineByLineTriplesTextDataset`: ' | ' between triples, predicate lower-cased)

A training sequence is `' {source} {bos} {target} {eos}'` and a generation prompt is
`' {source} {bos}'`, with bos = eos = '<|endoftext|>' for GPT-2 (`format_train_text`,
`format_prompt`). The token pipeline (`encode.py`) builds the same sequence from ids.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

GPT2_EOT = "<|endoftext|>"

# The E2E attribute names as they appear in the paper's source files.
E2E_KEY_NAMES: Mapping[str, str] = {
    "name": "name",
    "eatType": "Type",
    "food": "food",
    "priceRange": "price",
    "customer rating": "customer rating",
    "area": "area",
    "familyFriendly": "family friendly",
    "near": "near",
}


def linearize_e2e(pairs: Iterable[tuple[str, str]], *,
                  key_names: Mapping[str, str] | None = E2E_KEY_NAMES,
                  field_sep: str = " : ", item_sep: str = " | ") -> str:
  """`[(key, value), ...]` in MR order -> `'name : X | Type : pub'`; unknown keys kept as is."""
  key_names = key_names or {}
  return item_sep.join(f"{key_names.get(k, k)}{field_sep}{v}" for k, v in pairs)


def linearize_triples(triples: Iterable[Sequence[str]], *, leading_sep: bool = True,
                      lowercase_predicate: bool = False, field_sep: str = " : ",
                      item_sep: str = " | ") -> str:
  """`[(subject, predicate, object), ...]` -> `' | s : p : o | s : p : o'`.

  leading_sep=True, lowercase_predicate=False is the paper's WebNLG form; leading_sep=False,
  lowercase_predicate=True its DART form.
  """
  out = []
  for i, (subj, pred, obj) in enumerate(triples):
    if lowercase_predicate:
      pred = pred.lower()
    if leading_sep or i > 0:
      out.append(item_sep)
    out.append(f"{subj}{field_sep}{pred}{field_sep}{obj}")
  return "".join(out)


def format_prompt(source: str, bos: str = GPT2_EOT) -> str:
  """The generation prompt: `' {source} {bos}'`."""
  return f" {source} {bos}"


def format_train_text(source: str, target: str, bos: str = GPT2_EOT, eos: str = GPT2_EOT) -> str:
  """The full training string: `' {source} {bos} {target} {eos}'`."""
  return f" {source} {bos} {target} {eos}"
