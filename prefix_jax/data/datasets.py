"""Prepare the builders once into the TFDS data dir and read splits back with `tfds.data_source`.

Short names: e2e, e2e_cleaned, webnlg, dart, xsum, sst2. Preparing is cached by TFDS: the first
call parses the raw files and writes array_record shards under `paths.tfds_data_dir()`
(`PREFIX_JAX_DATA_DIR`); later calls only read `dataset_info.json`.
"""
from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from prefix_jax import paths
from prefix_jax.data import builders  # noqa: F401  (registers the builders)
from prefix_jax.data.sources import SplitUnavailableError

DATASETS = {
    "e2e": "pj_e2e/original",
    "e2e_cleaned": "pj_e2e/cleaned",
    "webnlg": "pj_webnlg2017",
    "dart": "pj_dart",
    "xsum": "pj_xsum",
    "sst2": "pj_sst2",
}
_BUILDER_KWARGS = {"file_format": "array_record"}

tfds.disable_progress_bar()
logging.getLogger("absl").setLevel(logging.WARNING)
log = logging.getLogger(__name__)


# Datasets whose split schemes are TFDS configs (`data.split_scheme`; 'standard' is the first).
CONFIG_SCHEMES = {"xsum": ("standard", "news_to_sports", "within_news")}


def _tfds_name(name: str, scheme: str = "standard") -> str:
  if name not in DATASETS:
    raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
  if name in CONFIG_SCHEMES:
    if scheme not in CONFIG_SCHEMES[name]:
      raise KeyError(f"{name} has no split scheme {scheme!r}: {CONFIG_SCHEMES[name]}")
    return f"{DATASETS[name]}/{scheme}"
  return DATASETS[name]


def _data_dir(data_dir) -> str:
  return str(Path(data_dir) if data_dir is not None else paths.tfds_data_dir())


def prepare(name: str, data_dir=None, scheme: str = "standard") -> tfds.core.DatasetBuilder:
  """Prepares dataset `name` (once; its `scheme` config where it has them) and returns its
  builder."""
  builder = tfds.builder(_tfds_name(name, scheme), data_dir=_data_dir(data_dir),
                         **_BUILDER_KWARGS)
  # TFDS prints "Downloading and preparing ... Unknown size" for data it reads from local
  # files: nothing is downloaded here, so the line would only mislead.
  with contextlib.redirect_stdout(io.StringIO()):
    builder.download_and_prepare()
  return builder


def available_splits(name: str, data_dir=None) -> list[str]:
  return sorted(prepare(name, data_dir).info.splits.keys())


def unavailable_splits(name: str, data_dir=None) -> dict[str, str]:
  """`{split: why}` for splits left out because their raw file was missing."""
  return dict(prepare(name, data_dir).info.metadata.get("unavailable_splits", {}))


def bad_input(name: str, data_dir=None) -> dict:
  """`{split: {reason: {'count': n, 'ids': [...]}}}` recorded while preparing."""
  return dict(prepare(name, data_dir).info.metadata.get("bad_input", {}))


def _to_python(value):
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    return [_to_python(v) for v in value.tolist()] if value.ndim else _to_python(value.item())
  if isinstance(value, (list, tuple)):
    return [_to_python(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, dict):
    return {k: _to_python(v) for k, v in value.items()}
  return value


def _unstack(record: dict) -> dict:
  """Nested `Sequence({...})` features come back as dicts of lists: make them lists of dicts."""
  out = {}
  for key, value in record.items():
    if isinstance(value, dict):
      cols = list(value)
      n = len(value[cols[0]]) if cols else 0
      out[key] = [{c: value[c][i] for c in cols} for i in range(n)]
    else:
      out[key] = value
  return out


def split_key(name: str, split: str, data_dir=None, scheme: str = "standard") -> tuple:
  """(TFDS name, split, prepared folder, stamp of its preparation): what a split's records
  are read from; a dataset prepared again gets another key.

  Raises `SplitUnavailableError` naming the missing raw file when the split was not prepared.
  """
  builder = prepare(name, data_dir, scheme)
  if split not in builder.info.splits:
    why = builder.info.metadata.get("unavailable_splits", {}).get(split)
    raise SplitUnavailableError(
        why or f"{name} has no split {split!r}; available: {sorted(builder.info.splits)}")
  folder = Path(builder.data_dir)
  return (_tfds_name(name, scheme), split, str(folder), _stamp(folder))


def read_split(name: str, split: str, data_dir=None, scheme: str = "standard") -> list[dict]:
  """All examples of one split (of the `scheme` config, where the dataset has them) as
  python dicts (str, int, bool, lists), in file order.

  Raises `SplitUnavailableError` naming the missing raw file when the split was not prepared.
  """
  key = split_key(name, split, data_dir, scheme)
  folder = Path(key[2])
  blob = _READ_CACHE.get(key) or _load_decoded(folder, split, key[-1])
  if blob is None:
    source = tfds.data_source(_tfds_name(name, scheme), split=split,
                              data_dir=_data_dir(data_dir), download=False,
                              builder_kwargs=_BUILDER_KWARGS)
    records = [_unstack(_to_python(r)) for r in source.__getitems__(range(len(source)))]
    blob = pickle.dumps(records, pickle.HIGHEST_PROTOCOL)
    _save_decoded(folder, split, key[-1], blob)
  _remember(key, blob)
  return pickle.loads(blob)  # fresh objects for each caller


# Splits read in this process, pickled: a process that runs many short runs (the inline sweep
# launcher) reads each split once, not once per run. Bounded in bytes, least recently used out.
_READ_CACHE: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
READ_CACHE_BYTES = 256 * 2**20

# Decoding a split record by record through its TFDS features costs seconds for every process
# that reads it (each training run), so the first reader also writes the decoded records beside
# the prepared shards (`<split>.decoded.pickle`), stamped with the prepared dataset's
# dataset_info.json and this format's version: a dataset prepared again is decoded again, and
# an unreadable or stale file counts as absent and is replaced.
_DECODED_FORMAT = 1


def _stamp(folder: Path) -> tuple[int, int, int]:
  info = folder / "dataset_info.json"
  st = info.stat() if info.exists() else None
  return (_DECODED_FORMAT, st.st_mtime_ns if st else 0, st.st_size if st else 0)


def _decoded_file(folder: Path, split: str) -> Path:
  return folder / f"{split}.decoded.pickle"


def _load_decoded(folder: Path, split: str, stamp: tuple) -> bytes | None:
  try:
    saved_stamp, blob = pickle.loads(_decoded_file(folder, split).read_bytes())
  except FileNotFoundError:
    return None
  except Exception as e:  # a torn or foreign file: decode the split again
    log.debug("ignoring %s: %s", _decoded_file(folder, split), e)
    return None
  return blob if saved_stamp == stamp else None


def _save_decoded(folder: Path, split: str, stamp: tuple, blob: bytes) -> None:
  path = _decoded_file(folder, split)
  tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
  try:
    tmp.write_bytes(pickle.dumps((stamp, blob), pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)  # readers see the old file or the whole new one
  except OSError as e:  # a read-only data dir: every process decodes the split itself
    log.debug("could not keep the decoded split %s: %s", path, e)
    tmp.unlink(missing_ok=True)


def _remember(key: tuple, blob: bytes) -> None:
  if len(blob) > READ_CACHE_BYTES // 4:
    return
  _READ_CACHE[key] = blob
  _READ_CACHE.move_to_end(key)
  while sum(map(len, _READ_CACHE.values())) > READ_CACHE_BYTES:
    _READ_CACHE.popitem(last=False)
