"""GLUE SST-2: sentence and binary label."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from prefix_jax.data import rawtext
from prefix_jax.data.builders import base
from prefix_jax.data.report import BadInputReport, CorruptFileError

_MANUAL_FILES = {"train": "train_full.tsv", "validation": "dev.tsv", "test": "test-labeled.tsv"}
_GLUE_ZIP = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"


def read_sst2_tsv(path: Path, split: str = "") -> tuple[list[dict], BadInputReport]:
  """Rows of a GLUE-style TSV with a `sentence` column and, optionally, `label` (0/1; -1 when
  the file has no labels, as GLUE's official test file). Rows with the wrong field count, an
  empty sentence, a label other than 0/1 or bytes that are not UTF-8 are skipped and reported.
  """
  path = Path(path)
  report = BadInputReport(str(path))
  lines = rawtext.read_text(path).splitlines()
  if not lines:
    raise CorruptFileError(path, 1, "empty file, expected a header with a sentence column")
  header = lines[0].split("\t")
  if "sentence" not in header:
    raise CorruptFileError(path, 1, f"expected a header with a sentence column, got {header}")
  i_sent = header.index("sentence")
  i_label = header.index("label") if "label" in header else None
  rows = []
  for lineno, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    rid = f"{path.name}:{lineno}"
    fields = next(csv.reader(io.StringIO(line), delimiter="\t", quoting=csv.QUOTE_NONE))
    if len(fields) != len(header):
      report.add("malformed_row", rid)
      continue
    sentence = fields[i_sent].strip()
    if rawtext.has_bad_bytes(sentence):
      report.add("non_utf8", rid)
      continue
    if not sentence:
      report.add("empty_source", rid)
      continue
    label = -1
    if i_label is not None:
      if fields[i_label].strip() not in ("0", "1"):
        report.add("bad_label", rid)
        continue
      label = int(fields[i_label])
    rows.append({"id": f"{split or path.stem}/{len(rows)}", "sentence": sentence, "label": label})
  return rows, report


class PjSst2(base.RawFilesBuilder):
  """SST-2 (GLUE): `sentence`, `label` (0 negative, 1 positive, -1 unknown)."""

  name = "pj_sst2"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_SUBDIR = "sst2"
  URLS = {"zip": _GLUE_ZIP}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place train_full.tsv (GLUE train.tsv), dev.tsv and test-labeled.tsv in "
      "<PREFIX_JAX_SHARED>/data/sst2.")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="GLUE SST-2 sentence classification.",
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "sentence": tfds.features.Text(),
            "label": tfds.features.Scalar(dtype=np.int32),
        }),
        homepage="https://gluebenchmark.com/",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _manual_sources(self, root):
    return {s: root / f for s, f in _MANUAL_FILES.items()}

  def _download_sources(self, dl_manager):
    root = Path(dl_manager.download_and_extract(_GLUE_ZIP)) / "SST-2"
    # GLUE's own test file carries no labels: they come out as -1.
    return {"train": root / "train.tsv", "validation": root / "dev.tsv",
            "test": root / "test.tsv"}

  def _parse(self, split, src):
    rows, report = read_sst2_tsv(src, split)
    return [(r["id"], r) for r in rows], report
