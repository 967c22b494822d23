"""Bad input is counted and named, corrupt files stop with file and line; small tmp files only."""
import hashlib

import pytest

from prefix_jax.data import datasets
from prefix_jax.data.builders.dart import read_dart_json
from prefix_jax.data.builders.e2e import read_e2e_csv
from prefix_jax.data.builders.sst2 import read_sst2_tsv
from prefix_jax.data.builders.webnlg import read_webnlg_xml
from prefix_jax.data.report import CorruptFileError

E2E_BAD = (b'mr,ref\n'
           b'"name[A], eatType[pub]",A is a pub.\n'                 # line 2: good
           b'"name[B], eatType[pub]",B is a pub.,extra\n'           # line 3: wrong field count
           b'"name B, eatType[pub]",B is a pub.\n'                  # line 4: malformed MR
           b'"name[C], eatType[pub]",\n'                            # line 5: empty target
           b'"name[D], eatType[pub]",D is a caf\xe9 \xff.\n'        # line 6: not UTF-8
           b'"name[E], area[riverside]","E is\nby the river."\n')   # lines 7-8: good, multi-line


def test_e2e_csv_bad_rows_counted(tmp_path):
  path = tmp_path / "devset.csv"
  path.write_bytes(E2E_BAD)
  rows, report = read_e2e_csv(path, "validation")
  assert [r["mr"] for r in rows] == ["name[A], eatType[pub]", "name[E], area[riverside]"]
  assert rows[1]["ref"] == "E is\nby the river."
  assert report.ids("malformed_row") == ["devset.csv:3"]
  assert report.ids("malformed_mr") == ["devset.csv:4"]
  assert report.ids("empty_target") == ["devset.csv:5"]
  assert report.ids("non_utf8") == ["devset.csv:6"]
  assert report.count() == 4
  assert "4 bad records" in report.summary()


def test_corrupt_csv_names_file_and_line(tmp_path):
  path = tmp_path / "broken.csv"
  path.write_bytes(b'mr,ref\n"name[A]",ok\n"name[B]","unterminated\nmore\n')
  with pytest.raises(CorruptFileError, match=r"broken\.csv, line 4: CSV error"):
    read_e2e_csv(path)
  nohead = tmp_path / "nohead.csv"
  nohead.write_bytes(b'"name[A]",ok\n')
  with pytest.raises(CorruptFileError, match=r"nohead\.csv, line 1: expected a header"):
    read_e2e_csv(nohead)


WEBNLG_BAD = """<?xml version="1.0" encoding="UTF-8"?>
<benchmark><entries>
<entry category="Airport" eid="Id1" size="1">
  <modifiedtripleset><mtriple>Aarhus | leaderName | Jacob_Bundsgaard</mtriple></modifiedtripleset>
  <lex comment="good" lid="Id1">The leader of Aarhus is Jacob Bundsgaard.</lex>
  <lex comment="good" lid="Id2">  </lex>
</entry>
<entry category="Airport" eid="Id2" size="1">
  <modifiedtripleset><mtriple>Aarhus | leaderName | Jacob_Bundsgaard</mtriple></modifiedtripleset>
</entry>
<entry category="Artist" eid="Id3" size="1">
  <modifiedtripleset><mtriple>Only | two</mtriple></modifiedtripleset>
  <lex comment="good" lid="Id1">Bad triple.</lex>
</entry>
<entry category="Artist" eid="Id4" size="1">
  <modifiedtripleset><mtriple>Aaron_Turner | genre | Black_metal</mtriple></modifiedtripleset>
  <lex comment="toFix" lid="Id1">Aaron Turner plays black metal.</lex>
</entry>
</entries></benchmark>
"""


def test_webnlg_entries_without_lex_counted(tmp_path):
  path = tmp_path / "test.xml"
  path.write_text(WEBNLG_BAD, encoding="utf-8")
  entries, report = read_webnlg_xml(path)
  assert [e["id"] for e in entries] == ["test/Id1", "test/Id4"]
  assert len(entries[0]["lex"]) == 1
  assert entries[1]["unseen"] and entries[1]["lex"][0]["comment"] == "toFix"
  assert report.ids("no_lexicalisation") == ["test/Id2"]
  assert report.ids("empty_target") == ["test/Id1/Id2"]
  assert report.ids("malformed_triple") == ["test/Id3"]


def test_webnlg_non_utf8_and_corrupt_xml(tmp_path):
  bad = tmp_path / "latin1.xml"
  bad.write_bytes(WEBNLG_BAD.replace("Jacob Bundsgaard.", "J\u00e9r\u00f4me.").encode("latin-1"))
  entries, report = read_webnlg_xml(bad)
  assert report.ids("non_utf8") == ["latin1/Id1"]
  assert report.ids("non_utf8_file") == ["latin1.xml:5"]
  assert [e["id"] for e in entries] == ["latin1/Id4"]
  cut = tmp_path / "cut.xml"
  cut.write_text(WEBNLG_BAD[:WEBNLG_BAD.index("<entry category=\"Artist\" eid=\"Id4\"")] + "<entry",
                 encoding="utf-8")
  with pytest.raises(CorruptFileError, match=r"cut\.xml, line 15: XML parse error"):
    read_webnlg_xml(cut)


def test_dart_bad_entries_and_corrupt_json(tmp_path):
  path = tmp_path / "dart.json"
  path.write_text('[{"tripleset": [["A", "B", "C"]], "annotations": [{"source": "x", "text": "A B C."},'
                  ' {"source": "x", "text": ""}]},\n'
                  ' {"tripleset": [["A", "B"]], "annotations": [{"source": "x", "text": "t"}]},\n'
                  ' {"tripleset": [["A", "B", "C"]], "annotations": []}]', encoding="utf-8")
  entries, report = read_dart_json(path, "validation")
  assert [e["id"] for e in entries] == ["validation/0"]
  assert report.ids("empty_target") == ["validation/0/1"]
  assert report.ids("malformed_triple") == ["validation/1"]
  assert report.ids("no_annotation") == ["validation/2"]
  broken = tmp_path / "broken.json"
  broken.write_text('[\n{"tripleset": [["A", "B", "C"]],\n "annotations": [}\n]', encoding="utf-8")
  with pytest.raises(CorruptFileError, match=r"broken\.json, line 3: JSON parse error"):
    read_dart_json(broken)


def test_sst2_bad_rows(tmp_path):
  path = tmp_path / "dev.tsv"
  path.write_bytes(b"sentence\tlabel\na fine film . \t1\nno label here\n\t0\nbad label\t7\n"
                   b"caf\xe9 noir\t0\n")
  rows, report = read_sst2_tsv(path)
  assert [(r["sentence"], r["label"]) for r in rows] == [("a fine film .", 1)]
  assert report.ids("malformed_row") == ["dev.tsv:3"]
  assert report.ids("empty_source") == ["dev.tsv:4"]
  assert report.ids("bad_label") == ["dev.tsv:5"]
  assert report.ids("non_utf8") == ["dev.tsv:6"]


def test_builder_reports_bad_input_and_leaves_files_alone(tmp_path, monkeypatch):
  shared = tmp_path / "shared"
  e2e = shared / "data" / "e2e"
  e2e.mkdir(parents=True)
  (e2e / "devset.csv").write_bytes(E2E_BAD)
  (e2e / "testset_w_refs.csv").write_bytes(b'mr,ref\n"name[A], eatType[pub]",A is a pub.\n')
  before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in e2e.iterdir()}
  monkeypatch.setenv("PREFIX_JAX_SHARED", str(shared))
  monkeypatch.setenv("PREFIX_JAX_OFFLINE", "1")
  data_dir = tmp_path / "tfds"
  rows = datasets.read_split("e2e", "validation", data_dir)
  assert len(rows) == 2
  bad = datasets.bad_input("e2e", data_dir)["validation"]
  assert bad["malformed_row"] == {"count": 1, "ids": ["devset.csv:3"]}
  assert bad["non_utf8"]["ids"] == ["devset.csv:6"]
  assert sum(v["count"] for v in bad.values()) == 4
  assert "trainset.csv" in datasets.unavailable_splits("e2e", data_dir)["train"]
  after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in e2e.iterdir()}
  assert after == before
