"""The exported prefix: materialized (MLP folded away), a small safetensors file + its spec.

`export_prefix(path, spec, cfg, params)` writes `prefix.safetensors` whose metadata holds the
spec and the backbone signature; `load_prefix(path)` returns `(spec, params, signature)`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from flax import traverse_util
from safetensors.numpy import load_file, save_file
from safetensors import safe_open

from prefix_jax.errors import UserError
from prefix_jax.models.config import ModelConfig
from prefix_jax.prefixes import PrefixSpec
from prefix_jax.prefixes.seq2seq_params import check_params_for, fold_reparam_for


class PrefixFileError(UserError, ValueError):
  pass


def backbone_signature(cfg: ModelConfig) -> dict:
  """What a prefix depends on: the architecture's shapes."""
  return {k: getattr(cfg, k) for k in ("arch", "num_layers", "hidden_size", "num_heads",
                                       "num_kv_heads", "head_dim", "vocab_size")}


def write_safetensors(path, arrays: dict, meta: dict) -> Path:
  """Writes {name: array} with string metadata atomically (a temp file, then a rename)."""
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  save_file({k: np.ascontiguousarray(np.asarray(v)) for k, v in arrays.items()}, str(tmp),
            metadata=meta)
  os.replace(tmp, path)
  return path


def read_safetensors(path, error: type[Exception], what: str) -> tuple[dict, dict]:
  """({name: array}, metadata) of a safetensors file; `error` (one line) if unreadable."""
  path = Path(path)
  if not path.exists():
    raise error(f"{path}: no such {what} file")
  try:
    with safe_open(str(path), "np") as f:
      meta = f.metadata() or {}
    return load_file(str(path)), meta
  except Exception as e:
    raise error(f"{path}: not a readable safetensors {what} ({e})") from None


def export_prefix(path, spec: PrefixSpec, cfg: ModelConfig, params: dict) -> Path:
  """Writes the folded prefix atomically; returns the file path."""
  spec, params = fold_reparam_for(spec, cfg, params)
  flat = traverse_util.flatten_dict(params, sep="/")
  arrays = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in flat.items()}
  meta = {"spec": json.dumps(dataclasses.asdict(spec)),
          "backbone": json.dumps(backbone_signature(cfg))}
  return write_safetensors(path, arrays, meta)


def load_prefix(path, cfg: ModelConfig | None = None):
  """(spec, params, signature). With `cfg`, checks the prefix fits that backbone."""
  path = Path(path)
  arrays, meta = read_safetensors(path, PrefixFileError, "prefix")
  if "spec" not in meta or "backbone" not in meta:
    raise PrefixFileError(f"{path}: missing prefix metadata (spec/backbone)")
  spec = PrefixSpec(**json.loads(meta["spec"]))
  signature = json.loads(meta["backbone"])
  if cfg is not None and backbone_signature(cfg) != signature:
    raise PrefixFileError(f"{path}: prefix was trained for backbone {signature}, "
                          f"not {backbone_signature(cfg)}")
  params = traverse_util.unflatten_dict(arrays, sep="/")
  if cfg is not None:
    check_params_for(spec, cfg, params)
  return spec, params, signature
