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


def read_split(name: str, split: str, data_dir=None, scheme: str = "standard") -> list[dict]:
  """All examples of one split (of the `scheme` config, where the dataset has them) as
  python dicts (str, int, bool, lists), in file order.

  Raises `SplitUnavailableError` naming the missing raw file when the split was not prepared.
  """
  builder = prepare(name, data_dir, scheme)
  if split not in builder.info.splits:
    why = builder.info.metadata.get("unavailable_splits", {}).get(split)
    raise SplitUnavailableError(
        why or f"{name} has no split {split!r}; available: {sorted(builder.info.splits)}")
  info = Path(builder.data_dir) / "dataset_info.json"
  key = (_tfds_name(name, scheme), split, str(builder.data_dir),
         info.stat().st_mtime_ns if info.exists() else 0)
  if key in _READ_CACHE:
    _READ_CACHE.move_to_end(key)
    return pickle.loads(_READ_CACHE[key])
  source = tfds.data_source(_tfds_name(name, scheme), split=split, data_dir=_data_dir(data_dir),
                            download=False, builder_kwargs=_BUILDER_KWARGS)
  records = [_unstack(_to_python(r)) for r in source.__getitems__(range(len(source)))]
  _remember(key, pickle.dumps(records, pickle.HIGHEST_PROTOCOL))
  return records


# Splits read in this process, pickled (each read gives the caller fresh objects): a process that
# runs many short runs (the inline sweep launcher) reads each split once, not once per run.
# Keyed by the prepared dataset's dataset_info.json time, so a dataset prepared again is read
# again. Bounded in bytes, least recently used first out.
_READ_CACHE: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
READ_CACHE_BYTES = 256 * 2**20


def _remember(key: tuple, blob: bytes) -> None:
  if len(blob) > READ_CACHE_BYTES // 4:
    return
  _READ_CACHE[key] = blob
  while sum(map(len, _READ_CACHE.values())) > READ_CACHE_BYTES:
    _READ_CACHE.popitem(last=False)
