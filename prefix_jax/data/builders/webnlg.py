"""WebNLG challenge 2017: one example per entry, with its triple set and all lexicalisations."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from prefix_jax.data.builders import base
from prefix_jax.data.report import BadInputReport, CorruptFileError

# The five test categories absent from train/dev (the "unseen" half of the 2017 test set).
UNSEEN_CATEGORIES = frozenset(
    {"Artist", "Athlete", "CelestialBody", "MeanOfTransportation", "Politician"})

_ARCHIVE = "https://gitlab.com/shimorina/webnlg-dataset/-/archive/master/webnlg-dataset-master.zip"


def read_webnlg_xml(path: Path, id_prefix: str = "",
                    report: BadInputReport | None = None) -> tuple[list[dict], BadInputReport]:
  """Entries of one WebNLG XML file.

  Each entry: `id`, `category`, `size`, `unseen`, `triples` (the *modified* triple set, as
  `{'subject', 'predicate', 'object'}`) and `lex` (`{'text', 'comment', 'lid'}`, all of them).
  Entries without any non-empty lexicalisation, with a malformed triple, or (when the file is
  not valid UTF-8) with replaced bytes are skipped and reported; empty lexicalisations are
  dropped and reported. XML that cannot be parsed raises `CorruptFileError` with the line.
  """
  path = Path(path)
  report = report if report is not None else BadInputReport(str(path))
  data = path.read_bytes()
  bad_bytes = False
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    bad_bytes = True
    text = data.decode("utf-8", errors="replace")
    line = data[:e.start].count(b"\n") + 1
    report.add("non_utf8_file", f"{path.name}:{line}")
  try:
    root = ET.fromstring(text)
  except ET.ParseError as e:
    raise CorruptFileError(path, e.position[0], f"XML parse error: {e}") from None
  entries = []
  prefix = id_prefix or path.stem
  for entry in root.iter("entry"):
    rid = f"{prefix}/{entry.get('eid')}"
    category = entry.get("category", "")
    triples, ok = [], True
    for mt in entry.iter("mtriple"):
      parts = [p.strip() for p in (mt.text or "").split(" | ", 2)]
      if len(parts) != 3 or not all(parts):
        ok = False
        break
      triples.append({"subject": parts[0], "predicate": parts[1], "object": parts[2]})
    if not ok or not triples:
      report.add("malformed_triple", rid)
      continue
    lex = []
    for lx in entry.iter("lex"):
      t = (lx.text or "").strip()
      if not t:
        report.add("empty_target", f"{rid}/{lx.get('lid')}")
        continue
      lex.append({"text": t, "comment": lx.get("comment", ""), "lid": lx.get("lid", "")})
    if not lex:
      report.add("no_lexicalisation", rid)
      continue
    if bad_bytes and any("\ufffd" in s for s in
                         [x["text"] for x in lex] + [v for t in triples for v in t.values()]):
      report.add("non_utf8", rid)
      continue
    entries.append({"id": rid, "category": category, "size": len(triples),
                    "unseen": category in UNSEEN_CATEGORIES, "triples": triples, "lex": lex})
  return entries, report


def read_webnlg_split(src: Path, split: str) -> tuple[list[dict], BadInputReport]:
  """A split: a directory of `*triples/*.xml` (train, dev) or one XML file (test)."""
  src = Path(src)
  report = BadInputReport(str(src))
  if src.is_dir():
    files = sorted(src.glob("*/*.xml"))
    if not files:
      raise CorruptFileError(src, None, "no */*.xml files in the WebNLG split directory")
  else:
    files = [src]
  entries = []
  for f in files:
    got, _ = read_webnlg_xml(f, id_prefix=f"{split}/{f.stem}", report=report)
    entries.extend(got)
  return entries, report


class PjWebnlg2017(base.RawFilesBuilder):
  """WebNLG 2017: triple sets, category, `unseen` (test categories absent from train), refs."""

  name = "pj_webnlg2017"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_SUBDIR = "webnlg2017"
  URLS = {"archive": _ARCHIVE}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place webnlg_challenge_2017/{train,dev,test} of the WebNLG dataset repository in "
      "<PREFIX_JAX_SHARED>/data/webnlg2017.")

  def _info(self):
    triple = {"subject": tfds.features.Text(), "predicate": tfds.features.Text(),
              "object": tfds.features.Text()}
    return tfds.core.DatasetInfo(
        builder=self,
        description="WebNLG challenge 2017 (modified triple sets), one example per entry.",
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "category": tfds.features.Text(),
            "size": tfds.features.Scalar(dtype=np.int32),
            "unseen": tfds.features.Scalar(dtype=np.bool_),
            "triples": tfds.features.Sequence(triple),
            "lex": tfds.features.Sequence({"text": tfds.features.Text(),
                                           "comment": tfds.features.Text(),
                                           "lid": tfds.features.Text()}),
        }),
        homepage="https://webnlg-challenge.loria.fr/challenge_2017/",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  @staticmethod
  def _layout(root: Path):
    return {"train": root / "train", "validation": root / "dev",
            "test": root / "test" / "testdata_with_lex.xml"}

  def _manual_sources(self, root):
    return self._layout(root)

  def _download_sources(self, dl_manager):
    root = Path(dl_manager.download_and_extract(_ARCHIVE))
    return self._layout(root / "webnlg-dataset-master" / "webnlg_challenge_2017")

  def _parse(self, split, src):
    entries, report = read_webnlg_split(src, split)
    return [(e["id"], e) for e in entries], report
