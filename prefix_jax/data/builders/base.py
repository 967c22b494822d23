"""The shared skeleton of every builder: find raw files (manual dir, else download), parse, record.

A subclass names its manual subdirectory, its official URLs, where each split's raw file lies
in either place, and how to parse one file into `(key, example)` pairs plus a
`BadInputReport`. Splits whose raw file is missing offline are left out of the prepared
dataset; `info.metadata["unavailable_splits"]` says why (the file) and `read_split` raises
`SplitUnavailableError` with that message. Bad input goes to `info.metadata["bad_input"]`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Mapping

import tensorflow_datasets as tfds

from prefix_jax.data import sources
from prefix_jax.data.report import BadInputReport, NoExamplesError

log = logging.getLogger(__name__)

SplitSource = Path | tuple[Path, ...]


def _exists(src: SplitSource) -> bool:
  return all(p.exists() for p in (src if isinstance(src, tuple) else (src,)))


def _names(src: SplitSource, root: Path) -> list[str]:
  items = src if isinstance(src, tuple) else (src,)
  return [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in items]


class RawFilesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base class; see the module docstring."""

  MANUAL_SUBDIR: str = ""
  URLS: Mapping[str, str] = {}

  def _manual_sources(self, root: Path) -> dict[str, SplitSource]:
    raise NotImplementedError

  def _download_sources(self, dl_manager) -> dict[str, SplitSource]:
    raise NotImplementedError

  def _parse(self, split: str, src: SplitSource) -> tuple[list[tuple[str, dict]], BadInputReport]:
    raise NotImplementedError

  def _metadata(self) -> tfds.core.MetadataDict:
    return tfds.core.MetadataDict()

  def _locate(self, dl_manager) -> tuple[dict[str, SplitSource], dict[str, str], str]:
    root = sources.manual_dir(self.MANUAL_SUBDIR)
    wanted = self._manual_sources(root)
    present = {s: src for s, src in wanted.items() if _exists(src)}
    if len(present) == len(wanted):
      return present, {}, f"manual directory {root}"
    probe_url = next(iter(self.URLS.values()))
    if sources.network_available(probe_url):
      return self._download_sources(dl_manager), {}, "official source " + probe_url
    missing = {s: _names(src, root) for s, src in wanted.items() if s not in present}
    if not present:
      all_missing = [n for names in missing.values() for n in names]
      raise sources.DataUnavailableError(sources.unavailable_message(
          self.name + (f"/{self.builder_config.name}" if self.builder_config else ""), root, all_missing, list(self.URLS.values())))
    full_name = self.name + (f"/{self.builder_config.name}" if self.builder_config else "")
    unavailable = {
        s: (f"split {s!r} of {full_name} is unavailable: {', '.join(names)} not found in {root} "
            f"and the network is unreachable to download it from {self.URLS.get(s, probe_url)}")
        for s, names in missing.items()}
    return present, unavailable, f"manual directory {root} (partial)"

  def _split_generators(self, dl_manager):
    located, unavailable, origin = self._locate(dl_manager)
    for message in unavailable.values():  # an error only if a run asks for that split
      log.info("%s", message)
    self.info.metadata["origin"] = origin
    self.info.metadata["unavailable_splits"] = unavailable
    self.info.metadata["bad_input"] = {}
    return {split: self._generate_examples(split=split, src=src) for split, src in located.items()}

  def _generate_examples(self, split: str, src: SplitSource) -> Iterator[tuple[str, dict]]:
    examples, report = self._parse(split, src)
    if not examples:  # else TFDS fails later, naming neither the file nor a line
      raise NoExamplesError(report, split)
    report.log(log)
    self.info.metadata["bad_input"][split] = report.to_json()
    yield from examples
