"""E2E NLG challenge (original and cleaned): one example per (MR, reference) row."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import tensorflow_datasets as tfds

from prefix_jax.data import rawtext
from prefix_jax.data.builders import base
from prefix_jax.data.report import BadInputReport, CorruptFileError

_MR_ITEM = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(,|$)")

_ORIGINAL_FILES = {"train": "trainset.csv", "validation": "devset.csv",
                   "test": "testset_w_refs.csv"}
_CLEANED_FILES = {"train": "train-fixed.no-ol.csv", "validation": "devel-fixed.no-ol.csv",
                  "test": "test-fixed.csv"}
_CLEANED_URL = "https://raw.githubusercontent.com/tuetschek/e2e-cleaning/master/cleaned-data/"


def parse_mr(mr: str) -> list[tuple[str, str]]:
  """`'name[The Vaults], eatType[pub]'` -> `[('name', 'The Vaults'), ('eatType', 'pub')]`.

  Raises ValueError when the string is not a comma-separated list of `key[value]`.
  """
  pairs, pos = [], 0
  while pos < len(mr):
    m = _MR_ITEM.match(mr, pos)
    if not m or m.end() == pos:
      raise ValueError(f"malformed MR at character {pos}: {mr!r}")
    pairs.append((m.group(1), m.group(2).strip()))
    pos = m.end()
  if not pairs:
    raise ValueError(f"empty MR: {mr!r}")
  return pairs


def read_e2e_csv(path: Path, split: str = "") -> tuple[list[dict], BadInputReport]:
  """Rows of an E2E CSV (columns `mr`, `ref`, any others ignored) as dicts.

  Rows with the wrong number of fields, an unparsable or empty MR, an empty reference or bytes
  that are not UTF-8 are skipped and reported by `file:line`. A file whose CSV quoting is broken
  or that lacks the `mr,ref` header raises `CorruptFileError`.
  """
  path = Path(path)
  report = BadInputReport(str(path))
  reader = csv.reader(io.StringIO(rawtext.read_text(path), newline=""), strict=True)
  try:
    header = [h.strip().lower() for h in next(reader)]
  except StopIteration:
    raise CorruptFileError(path, 1, "empty file, expected a header with columns mr,ref") from None
  except csv.Error as e:
    raise CorruptFileError(path, reader.line_num, f"CSV error: {e}") from None
  if "mr" not in header or "ref" not in header:
    raise CorruptFileError(path, 1, f"expected a header with columns mr,ref, got {header}")
  i_mr, i_ref = header.index("mr"), header.index("ref")
  rows = []
  while True:
    try:
      row = next(reader)
    except StopIteration:
      break
    except csv.Error as e:
      raise CorruptFileError(path, reader.line_num, f"CSV error: {e}") from None
    rid = f"{path.name}:{reader.line_num}"
    if not row:
      continue
    if len(row) != len(header):
      report.add("malformed_row", rid)
      continue
    mr, ref = row[i_mr].strip(), row[i_ref].strip()
    if rawtext.has_bad_bytes(mr, ref):
      report.add("non_utf8", rid)
      continue
    if not mr:
      report.add("empty_source", rid)
      continue
    try:
      pairs = parse_mr(mr)
    except ValueError:
      report.add("malformed_mr", rid)
      continue
    if not ref:
      report.add("empty_target", rid)
      continue
    rows.append({"id": f"{split or path.stem}/{len(rows)}", "mr": mr, "ref": ref,
                 "attributes": [{"key": k, "value": v} for k, v in pairs]})
  return rows, report


class E2eConfig(tfds.core.BuilderConfig):
  pass


class PjE2e(base.RawFilesBuilder):
  """E2E NLG: `mr`, `ref`, and the MR parsed into `attributes` (key/value pairs, MR order)."""

  name = "pj_e2e"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      E2eConfig(name="original", description="E2E dataset (Novikova et al. 2017)."),
      E2eConfig(name="cleaned", description="Cleaned E2E (Dusek et al. 2019)."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place devset.csv, testset_w_refs.csv (and trainset.csv) of tuetschek/e2e-dataset in "
      "<PREFIX_JAX_SHARED>/data/e2e, or the cleaned CSVs of tuetschek/e2e-cleaning in "
      "<PREFIX_JAX_SHARED>/data/e2e_cleaned.")

  @property
  def MANUAL_SUBDIR(self):  # noqa: N802 (class-constant style, per config)
    return "e2e" if self.builder_config.name == "original" else "e2e_cleaned"

  @property
  def URLS(self):  # noqa: N802
    if self.builder_config.name == "original":
      return {"zip": "https://github.com/tuetschek/e2e-dataset/releases/download/v1.0.0/"
                     "e2e-dataset.zip"}
    return {s: _CLEANED_URL + f for s, f in _CLEANED_FILES.items()}

  def _files(self):
    return _ORIGINAL_FILES if self.builder_config.name == "original" else _CLEANED_FILES

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="E2E NLG challenge data, one example per (MR, reference) row, file order.",
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "mr": tfds.features.Text(),
            "ref": tfds.features.Text(),
            "attributes": tfds.features.Sequence({
                "key": tfds.features.Text(), "value": tfds.features.Text()}),
        }),
        homepage="https://github.com/tuetschek/e2e-dataset",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _manual_sources(self, root):
    return {s: root / f for s, f in self._files().items()}

  def _download_sources(self, dl_manager):
    if self.builder_config.name == "original":
      root = Path(dl_manager.download_and_extract(self.URLS["zip"])) / "e2e-dataset"
      return {s: root / f for s, f in _ORIGINAL_FILES.items()}
    got = dl_manager.download(dict(self.URLS))
    return {s: Path(p) for s, p in got.items()}

  def _parse(self, split, src):
    rows, report = read_e2e_csv(src, split)
    return [(r["id"], r) for r in rows], report
