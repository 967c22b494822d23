"""XSUM (Narayan et al. 2018): BBC document and one-sentence summary, official 90/5/5 split.

Configs (the split schemes of Li & Liang 2021, Table 3, topic read from each article's URL):
  standard        the official splits.
  news_to_sports  train / validation: the news articles of the official train / validation
                  splits; test: the sports articles of the official test split.
  within_news     train / validation: world, UK and business news; test: the other news
                  categories (health, technology, ...) of the official test split.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import tensorflow_datasets as tfds

from prefix_jax.data import rawtext
from prefix_jax.data.builders import base
from prefix_jax.data.report import BadInputReport, CorruptFileError

SPLIT_FILE = "XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json"
DATA_DIR = "bbc-summary-data"
_DATA_URL = "http://bollin.inf.ed.ac.uk/public/direct/XSUM-EMNLP18-Summary-Data-Original.tar.gz"
_SPLIT_URL = ("https://raw.githubusercontent.com/EdinburghNLP/XSum/master/XSum-Dataset/"
              + SPLIT_FILE)
_SECTION = re.compile(r"\[SN\]([A-Z-]+)\[SN\]")
TRAIN_NEWS = frozenset({"world", "uk", "business"})  # within_news: the training categories


def url_topic(url: str) -> str:
  """'sport' for a sports article, else the news category of a BBC URL
  (`.../news/world-europe-123` -> 'world'), '' when the URL names neither."""
  parts = [p for p in url.split("://", 1)[-1].split("/")[1:] if p]
  if parts and parts[0] == "sport":
    return "sport"
  if len(parts) >= 2 and parts[0] == "news":
    return parts[1].split("-")[0].lower()
  return ""


def in_scheme(scheme: str, split: str, topic: str) -> bool:
  """Whether an article of `topic` in official `split` belongs to `scheme`'s split."""
  if scheme == "standard":
    return True
  test = split == "test"
  if scheme == "news_to_sports":
    return topic == "sport" if test else topic not in ("sport", "")
  if scheme == "within_news":
    news = topic not in ("sport", "")
    return news and ((topic in TRAIN_NEWS) != test)
  raise ValueError(f"unknown XSUM split scheme {scheme!r}")


def parse_summary_file(text: str) -> dict[str, str]:
  """`[SN]NAME[SN]` sections of one `.summary` file -> `{NAME: text}`."""
  parts = _SECTION.split(text)
  return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def read_xsum_split(split_file: Path, data_dir: Path, split: str, scheme: str = "standard",
                    ) -> tuple[list[dict], BadInputReport]:
  """Documents of one split (`train`, `validation`, `test`) in the split file's order, those
  of `scheme` only (see the module doc); each with the `topic` of its URL.

  Ids whose `.summary` file is absent, empty documents/summaries and bytes that are not UTF-8
  are skipped and reported.
  """
  split_file, data_dir = Path(split_file), Path(data_dir)
  report = BadInputReport(f"{data_dir} ({split})")
  try:
    ids = json.loads(rawtext.read_text(split_file))[split]
  except json.JSONDecodeError as e:
    raise CorruptFileError(split_file, e.lineno, f"JSON parse error: {e.msg}") from None
  except KeyError:
    raise CorruptFileError(split_file, None, f"no {split!r} key in the split file") from None
  rows = []
  for doc_id in ids:
    path = data_dir / f"{doc_id}.summary"
    if not path.is_file():
      report.add("missing_file", doc_id)
      continue
    sections = parse_summary_file(rawtext.read_text(path))
    topic = url_topic(sections.get("URL", ""))
    if not in_scheme(scheme, split, topic):
      continue
    summary = sections.get("FIRST-SENTENCE", "")
    document = sections.get("RESTBODY", "")
    if rawtext.has_bad_bytes(summary, document):
      report.add("non_utf8", doc_id)
    elif not document:
      report.add("empty_source", doc_id)
    elif not summary:
      report.add("empty_target", doc_id)
    else:
      rows.append({"id": str(doc_id), "document": document, "summary": summary,
                   "topic": topic})
  return rows, report


class PjXsum(base.RawFilesBuilder):
  """XSUM: `document`, `summary`. The BBC articles are not redistributed with this project."""

  name = "pj_xsum"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "1.1.0": "URL topic per article; news_to_sports / within_news configs."}
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=n, description=d) for n, d in (
      ("standard", "The official splits."),
      ("news_to_sports", "Train on news, test on sports (Li & Liang 2021, Table 3)."),
      ("within_news", "Train on world/UK/business news, test on other news categories."))]
  MANUAL_SUBDIR = "xsum"
  URLS = {"data": _DATA_URL, "split": _SPLIT_URL}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Place {SPLIT_FILE} and the extracted {DATA_DIR}/ folder (from "
      f"XSUM-EMNLP18-Summary-Data-Original.tar.gz) in <PREFIX_JAX_SHARED>/data/xsum.")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="XSUM extreme summarization, official split.",
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "document": tfds.features.Text(),
            "summary": tfds.features.Text(),
            "topic": tfds.features.Text(),
        }),
        homepage="https://github.com/EdinburghNLP/XSum",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _manual_sources(self, root):
    return {s: (root / SPLIT_FILE, root / DATA_DIR) for s in ("train", "validation", "test")}

  def _download_sources(self, dl_manager):
    got = dl_manager.download_and_extract({"data": _DATA_URL, "split": _SPLIT_URL})
    data_dir = Path(got["data"]) / DATA_DIR
    return {s: (Path(got["split"]), data_dir) for s in ("train", "validation", "test")}

  def _parse(self, split, src):
    rows, report = read_xsum_split(src[0], src[1], split, self.builder_config.name)
    return [(r["id"], r) for r in rows], report
