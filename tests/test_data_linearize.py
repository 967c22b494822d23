"""Linearization of known entries, read straight from the raw files (expected strings by hand)."""
import pytest

from prefix_jax.data import linearize
from prefix_jax.data.builders.dart import read_dart_json
from prefix_jax.data.builders.e2e import parse_mr, read_e2e_csv
from prefix_jax.data.builders.webnlg import read_webnlg_xml


def _e2e(mr):
  return linearize.linearize_e2e(parse_mr(mr))


def test_e2e_known_rows(shared_dir):
  rows, report = read_e2e_csv(shared_dir / "data/e2e/devset.csv")
  assert report.count() == 0
  pairs = [(a["key"], a["value"]) for a in rows[0]["attributes"]]
  assert linearize.linearize_e2e(pairs) == "name : Alimentum | area : city centre | family friendly : no"
  cotto = next(r for r in rows if r["mr"].startswith("name[Cotto], eatType[coffee shop], food[Chinese]"))
  assert linearize.linearize_e2e([(a["key"], a["value"]) for a in cotto["attributes"]]) == (
      "name : Cotto | Type : coffee shop | food : Chinese | price : £20-25 | customer rating : high"
      " | area : city centre | near : The Portland Arms")


def test_e2e_paper_example_and_prompt():
  mr = ("name[The Vaults], eatType[pub], priceRange[more than £30], customer rating[5 out of 5], "
        "near[Café Adriatic]")
  src = _e2e(mr)
  assert src == ("name : The Vaults | Type : pub | price : more than £30 | customer rating : 5 out of 5"
                 " | near : Café Adriatic")
  assert linearize.format_prompt(src) == f" {src} <|endoftext|>"
  assert linearize.format_train_text(src, "The Vaults is a pub.") == (
      f" {src} <|endoftext|> The Vaults is a pub. <|endoftext|>")
  assert linearize.linearize_e2e(parse_mr(mr), key_names=None).startswith("name : The Vaults | eatType : pub")


def test_parse_mr_rejects_garbage():
  with pytest.raises(ValueError):
    parse_mr("name[The Vaults], eatType pub")
  with pytest.raises(ValueError):
    parse_mr("")


def test_webnlg_known_entry(shared_dir):
  entries, _ = read_webnlg_xml(
      shared_dir / "data/webnlg2017/train/2triples/2triples_Airport_train_challenge.xml")
  e = entries[0]
  triples = [(t["subject"], t["predicate"], t["object"]) for t in e["triples"]]
  assert linearize.linearize_triples(triples) == (
      " | Aarhus : leaderName : Jacob_Bundsgaard | Aarhus_Airport : cityServed : Aarhus")
  assert [x["text"] for x in e["lex"]][0] == (
      "Aarhus airport serves the city of Aarhus who's leader is Jacob Bundsgaard.")
  assert e["category"] == "Airport" and e["size"] == 2 and not e["unseen"]


def test_dart_known_entry(shared_dir):
  entries, report = read_dart_json(shared_dir / "data/dart/dart-v1.1.1-full-dev.json")
  assert report.count() == 0
  triples = [(t["subject"], t["predicate"], t["object"]) for t in entries[0]["triples"]]
  assert linearize.linearize_triples(triples, leading_sep=False, lowercase_predicate=True) == (
      "Mars Hill College : joined : 1973 | Mars Hill College : location : Mars Hill, North Carolina")
  assert entries[1]["annotations"][0]["text"] == "Newberry College's nickname is the wolves."
