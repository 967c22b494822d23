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
from prefix_jax.prefixes import PrefixSpec, check_params, fold_reparam


class PrefixFileError(UserError, ValueError):
  pass


def backbone_signature(cfg: ModelConfig) -> dict:
  """What a prefix depends on: the architecture's shapes."""
  return {k: getattr(cfg, k) for k in ("arch", "num_layers", "hidden_size", "num_heads",
                                       "num_kv_heads", "head_dim", "vocab_size")}


def export_prefix(path, spec: PrefixSpec, cfg: ModelConfig, params: dict) -> Path:
  """Writes the folded prefix atomically; returns the file path."""
  spec, params = fold_reparam(spec, cfg, params)
  flat = traverse_util.flatten_dict(params, sep="/")
  arrays = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in flat.items()}
  meta = {"spec": json.dumps(dataclasses.asdict(spec)),
          "backbone": json.dumps(backbone_signature(cfg))}
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  save_file(arrays, str(tmp), metadata=meta)
  os.replace(tmp, path)
  return path


def load_prefix(path, cfg: ModelConfig | None = None):
  """(spec, params, signature). With `cfg`, checks the prefix fits that backbone."""
  path = Path(path)
  if not path.exists():
    raise PrefixFileError(f"{path}: no such prefix file")
  try:
    with safe_open(str(path), "np") as f:
      meta = f.metadata() or {}
    arrays = load_file(str(path))
  except Exception as e:
    raise PrefixFileError(f"{path}: not a readable safetensors prefix ({e})") from None
  if "spec" not in meta or "backbone" not in meta:
    raise PrefixFileError(f"{path}: missing prefix metadata (spec/backbone)")
  spec = PrefixSpec(**json.loads(meta["spec"]))
  signature = json.loads(meta["backbone"])
  if cfg is not None and backbone_signature(cfg) != signature:
    raise PrefixFileError(f"{path}: prefix was trained for backbone {signature}, "
                          f"not {backbone_signature(cfg)}")
  params = traverse_util.unflatten_dict(arrays, sep="/")
  if cfg is not None:
    check_params(spec, cfg, params)
  return spec, params, signature
