"""DART v1.1.1: one example per triple set, with all its annotations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from prefix_jax.data import rawtext
from prefix_jax.data.builders import base
from prefix_jax.data.report import BadInputReport, CorruptFileError

_FILES = {"train": "dart-v1.1.1-full-train.json", "validation": "dart-v1.1.1-full-dev.json",
          "test": "dart-v1.1.1-full-test.json"}
_URL = "https://raw.githubusercontent.com/Yale-LILY/dart/master/data/v1.1.1/"


def read_dart_json(path: Path, split: str = "") -> tuple[list[dict], BadInputReport]:
  """Entries of a DART JSON file: `id`, `triples`, `annotations` (`{'text', 'source'}`),
  `subtree_was_extended`. Malformed triples, entries without a non-empty annotation and
  entries with bytes that are not UTF-8 are skipped and reported; empty annotations are dropped
  and reported. JSON that cannot be parsed raises `CorruptFileError` with the line."""
  path = Path(path)
  report = BadInputReport(str(path))
  try:
    data = json.loads(rawtext.read_text(path))
  except json.JSONDecodeError as e:
    raise CorruptFileError(path, e.lineno, f"JSON parse error: {e.msg}") from None
  if not isinstance(data, list):
    raise CorruptFileError(path, 1, "expected a JSON list of entries")
  entries = []
  for i, ex in enumerate(data):
    rid = f"{split or path.stem}/{i}"
    tripleset = ex.get("tripleset") if isinstance(ex, dict) else None
    if (not tripleset or not all(isinstance(t, list) and len(t) == 3 for t in tripleset)):
      report.add("malformed_triple", rid)
      continue
    triples = [{"subject": str(s), "predicate": str(p), "object": str(o)}
               for s, p, o in tripleset]
    annotations = []
    for j, a in enumerate(ex.get("annotations") or []):
      text = str(a.get("text") or "").strip()
      if not text:
        report.add("empty_target", f"{rid}/{j}")
        continue
      annotations.append({"text": text, "source": str(a.get("source") or "")})
    if not annotations:
      report.add("no_annotation", rid)
      continue
    strings = [a["text"] for a in annotations] + [v for t in triples for v in t.values()]
    if rawtext.has_bad_bytes(*strings):
      report.add("non_utf8", rid)
      continue
    entries.append({"id": rid, "triples": triples, "annotations": annotations,
                    "subtree_was_extended": bool(ex.get("subtree_was_extended", False))})
  return entries, report


class PjDart(base.RawFilesBuilder):
  """DART: triple sets and their references."""

  name = "pj_dart"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_SUBDIR = "dart"
  URLS = {s: _URL + f for s, f in _FILES.items()}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place dart-v1.1.1-full-{train,dev,test}.json of Yale-LILY/dart in "
      "<PREFIX_JAX_SHARED>/data/dart.")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="DART v1.1.1, one example per triple set.",
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "triples": tfds.features.Sequence({"subject": tfds.features.Text(),
                                               "predicate": tfds.features.Text(),
                                               "object": tfds.features.Text()}),
            "annotations": tfds.features.Sequence({"text": tfds.features.Text(),
                                                   "source": tfds.features.Text()}),
            "subtree_was_extended": tfds.features.Scalar(dtype=np.bool_),
        }),
        homepage="https://github.com/Yale-LILY/dart",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _manual_sources(self, root):
    return {s: root / f for s, f in _FILES.items()}

  def _download_sources(self, dl_manager):
    return {s: Path(p) for s, p in dl_manager.download(dict(self.URLS)).items()}

  def _parse(self, split, src):
    entries, report = read_dart_json(src, split)
    return [(e["id"], e) for e in entries], report
