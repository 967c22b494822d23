"""HF checkpoints: a local directory with `config.json` + safetensors (single or sharded).

Each architecture keeps its name map in its own module (`hf_llama`, `hf_gpt2`, ...) and
registers an `HFArch` here. A name map is a list of `(hf_name, our_path, transform)`;
`transform` turns the HF array into ours (e.g. a transpose for torch Linear weights).
No pickle is ever read.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from prefix_jax.models.config import ModelConfig
from prefix_jax.weights import shapes
from prefix_jax.weights.errors import WeightsError
from prefix_jax.weights.host_arrays import aligned_float32
from prefix_jax.weights.tokenizer import MissingTokenizer, Tokenizer


# Tensors a checkpoint may carry that no model parameter comes from (buffers, tied heads).
IGNORED_TENSORS = (r"\.attn\.(masked_)?bias$", r"rotary_emb\.inv_freq$", r"(^|\.)position_ids$",
                   r"^lm_head\.weight$")


@dataclasses.dataclass(frozen=True)
class HFArch:
  model_types: tuple[str, ...]
  config_from_hf: Callable[[dict], ModelConfig]
  param_map: Callable[[ModelConfig, set[str]], list[tuple[str, tuple[str, ...], Callable]]]
  ignored: tuple[str, ...] = IGNORED_TENSORS  # regexes of tensors allowed to go unused


ARCHS: dict[str, HFArch] = {}


def register(name: str, arch: HFArch) -> None:
  ARCHS[name] = arch


def _arch_for(model_type: str, path: Path) -> HFArch:
  _import_builtin_archs()
  for arch in ARCHS.values():
    if model_type in arch.model_types:
      return arch
  known = sorted(t for a in ARCHS.values() for t in a.model_types)
  raise WeightsError(f"{path}: unknown architecture model_type='{model_type}' (known: {known})")


def _import_builtin_archs():
  # Imported lazily so each name map lives in its own module and registers itself.
  import importlib
  for mod in ("hf_llama", "hf_gpt2", "hf_bert", "hf_bart"):
    try:
      importlib.import_module(f"prefix_jax.weights.{mod}")
    except ModuleNotFoundError as e:
      if e.name != f"prefix_jax.weights.{mod}":
        raise


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
  """All tensors of a directory's safetensors files (single, or sharded with an index)."""
  from safetensors import safe_open
  path = Path(path)
  index = path / "model.safetensors.index.json"
  if index.exists():
    files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
  elif (path / "model.safetensors").exists():
    files = ["model.safetensors"]
  else:
    pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
    hint = (f" (found pickle files {pickles}: convert with "
            "model.save_pretrained(dir, safe_serialization=True))") if pickles else ""
    raise WeightsError(f"{path}: no model.safetensors or model.safetensors.index.json{hint}")
  tensors = {}
  for name in files:
    f = path / name
    try:
      with safe_open(str(f), framework="numpy") as opened:
        names = list(opened.keys())
      for key in names:
        # One open per tensor: the file's mapped pages count as RSS while it is open, so
        # reading everything through one mapping peaks at the file plus its copy.
        with safe_open(str(f), framework="numpy") as opened:
          tensors[key] = aligned_float32(opened.get_tensor(key))
    except Exception as e:  # safetensors raises its own error types for truncated headers/data
      raise WeightsError(f"{f}: cannot read safetensors file ({type(e).__name__}: {e})") from None
  return tensors


def params_from_tensors(arch: HFArch, cfg: ModelConfig, tensors: dict[str, np.ndarray],
                        source: Path) -> dict:
  """Maps HF tensors into our nested param dict, checking every shape against `cfg`."""
  import re
  params: dict = {}
  mapping = arch.param_map(cfg, set(tensors))
  used = {hf_name for hf_name, _, _ in mapping}
  unused = sorted(n for n in set(tensors) - used
                  if not any(re.search(rx, n) for rx in arch.ignored))
  if unused:
    raise WeightsError(f"{source}: tensors {unused[:3]} (+{max(len(unused) - 3, 0)} more) are "
                       f"not used by the config (num_layers={cfg.num_layers}, "
                       f"hidden_size={cfg.hidden_size}): config and weights disagree")
  for hf_name, path, transform in mapping:
    if hf_name not in tensors:
      raise WeightsError(f"{source}: tensor '{hf_name}' missing (config says "
                         f"num_layers={cfg.num_layers}, hidden_size={cfg.hidden_size})")
    value = aligned_float32(transform(tensors[hf_name]))
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return params


def load_hf_config(path: Path) -> tuple[HFArch, ModelConfig]:
  cfg_file = Path(path) / "config.json"
  if not cfg_file.exists():
    raise WeightsError(f"{path}: no config.json")
  try:
    raw = json.loads(cfg_file.read_text())
  except json.JSONDecodeError as e:
    raise WeightsError(f"{cfg_file}: invalid JSON ({e})") from None
  arch = _arch_for(raw.get("model_type", "<missing>"), cfg_file)
  try:
    return arch, arch.config_from_hf(raw)
  except (KeyError, ValueError) as e:
    raise WeightsError(f"{cfg_file}: bad config ({e})") from None


def load_hf_dir(path, with_tokenizer: bool = True):
  """`(ModelConfig, params, tokenizer|None)` from a local HF model directory. Without a
  `tokenizer.json` the tokenizer is a `MissingTokenizer` that says so when first used."""
  path = Path(path)
  if not path.is_dir():
    raise WeightsError(f"{path}: not a directory")
  arch, cfg = load_hf_config(path)
  tensors = read_safetensors(path)
  params = params_from_tensors(arch, cfg, tensors, path)
  shapes.check_params(params, cfg, path)
  tokenizer = None
  if with_tokenizer and (path / "tokenizer.json").exists():
    tokenizer = Tokenizer.from_file(path / "tokenizer.json")
  elif with_tokenizer:
    tokenizer = MissingTokenizer(f"{path}: no tokenizer.json (the weights loaded; a tokenizer "
                                 "is needed to encode or decode text)")
  return cfg, params, tokenizer


def transpose(x):
  # One copy, straight into an aligned buffer (params_from_tensors then keeps it as it is).
  return aligned_float32(x.T)


def identity(x):
  return x
