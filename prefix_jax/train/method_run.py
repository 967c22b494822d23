"""What the trainer and `evaluate` do with a `Method` (prefix_jax.methods): its trained tree, its
loss, its file.

`prepare(method, model, backbone, rng, tokenizer)` -> `Prepared` (initial trained tree, the
frozen rest of the backbone, the loss); `export_trained` writes what a run trained;
`trained_weights` gives `evaluate` exactly those weights.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from pathlib import Path
from typing import Callable

import jax
import safetensors
from flax import traverse_util

from prefix_jax.methods import deltas
from prefix_jax.methods.errors import MethodError
from prefix_jax.methods.registry import PREFIX_FAMILY, Method
from prefix_jax.models.deltas import Delta
from prefix_jax.prefixes import count_params
from prefix_jax.prefixes.seq2seq_params import init_prefix_for, materialize_for
from prefix_jax.train.heads import HEAD_FILE
from prefix_jax.train.export import (backbone_signature, export_prefix, load_prefix,
                                     read_safetensors, write_safetensors)
from prefix_jax.train.loss import loss_function
from prefix_jax.train.step import merge_backbone, split_backbone

METHOD_FILE = "method.safetensors"   # trained backbone leaves and/or added parameters
PREFIX_FILE = "prefix.safetensors"


@dataclasses.dataclass
class Prepared:
  """trainable: {'prefix', 'backbone'[, 'delta']} (the optimizer's tree); frozen: the backbone
  without the trained leaves; loss_fn(prefix_params, backbone, batch, delta=None) -> (loss,
  metrics), as `train.step` calls it."""
  trainable: dict
  frozen: dict
  loss_fn: Callable


def prepare(method: Method, model, backbone: dict, rng, tokenizer=None) -> Prepared:
  spec = method.spec
  prefix = {} if spec is None else init_prefix_for(spec, model.cfg, rng, model=model,
                                                   backbone=backbone, tokenizer=tokenizer)
  trained, frozen = split_backbone(backbone, method.pattern)
  trainable = {"prefix": prefix, "backbone": trained}
  if method.delta_init is not None:
    trainable["delta"] = method.delta_init(jax.random.fold_in(rng, 1))
  return Prepared(trainable, frozen, functools.partial(
      _loss, loss=loss_function(model.cfg, model, spec), scale=method.lora_scale))


def _loss(prefix_params, backbone, batch, delta=None, *, loss, scale):
  return loss(prefix_params, backbone, batch, delta=None if delta is None else Delta(delta, scale))


def check_trainable(method: Method, trainable: dict, backbone: dict) -> None:
  """Asserts the trained tree holds only the method's leaves."""
  expected = {"prefix", "backbone"} | ({"delta"} if method.delta_init else set())
  assert set(trainable) == expected, f"trained tree has {sorted(trainable)}"
  assert bool(trainable["prefix"]) == (method.spec is not None), "prefix leaves without a prefix"
  flat = traverse_util.flatten_dict(backbone, sep="/")
  rx = re.compile(method.pattern) if method.pattern else None
  want = sorted(k for k in flat if rx is not None and rx.search(k))
  assert sorted(trainable["backbone"]) == want, "trained backbone leaves != the method's"


def share_summary(trainable: dict, backbone: dict) -> dict:
  """summary.json fields: trainable_params, backbone_params, trainable_share."""
  n, nb = count_params(trainable), count_params(backbone)
  return {"trainable_params": n, "backbone_params": nb, "trainable_share": n / max(nb, 1)}


def export_trained(workdir, method: Method, cfg, trainable: dict) -> dict:
  """Writes prefix.safetensors (prefix family) and/or method.safetensors (trained backbone
  leaves `backbone/<path>`, added parameters `delta/<path>`); returns summary fields."""
  workdir, out = Path(workdir), {}
  trainable = jax.device_get(trainable)
  if method.spec is not None:
    path = export_prefix(workdir / PREFIX_FILE, method.spec, cfg, trainable["prefix"])
    out.update(prefix_file=str(path), prefix_bytes=path.stat().st_size)
  arrays = {f"backbone/{k}": v for k, v in trainable["backbone"].items()}
  arrays.update({f"delta/{k}": v for k, v in
                 traverse_util.flatten_dict(trainable.get("delta", {}), sep="/").items()})
  if arrays:
    meta = {"method": json.dumps(method.signature), "lora_scale": repr(method.lora_scale),
            "backbone": json.dumps(backbone_signature(cfg))}
    path = write_safetensors(workdir / METHOD_FILE, arrays, meta)
    out.update(method_file=str(path), method_bytes=path.stat().st_size)
  return out


def load_trained(path, cfg) -> tuple[dict, dict, dict, float]:
  """(method signature, trained backbone leaves {'a/b/kernel': x}, delta tree, lora scale)."""
  arrays, meta = read_safetensors(path, MethodError, "method")
  if "method" not in meta or json.loads(meta.get("backbone", "{}")) != backbone_signature(cfg):
    raise MethodError(f"{path}: not a method file of this backbone ({meta.get('backbone')})")
  leaves = {k[len("backbone/"):]: v for k, v in arrays.items() if k.startswith("backbone/")}
  delta = traverse_util.unflatten_dict(
      {k[len("delta/"):]: v for k, v in arrays.items() if k.startswith("delta/")}, sep="/")
  return json.loads(meta["method"]), leaves, delta, float(meta["lora_scale"])


def trained_weights(config, cfg, backbone: dict, workdir, prefix_file=None):
  """(backbone, prefix, spec, delta) that `evaluate` decodes with: the run's trained leaves
  merged into the backbone, its prefix materialized and its spec (None, None without one), and
  its added parameters as a `Delta` passed to the model (None without any). LoRA is folded
  into the kernels (delta None) unless `config.lora.merge` is False; adapters and
  LLaMA-Adapter have no exact fold and always come back as the delta."""
  workdir = Path(workdir)
  prefix = spec = None
  if config.method in PREFIX_FAMILY:
    spec, params, _ = load_prefix(Path(prefix_file) if prefix_file else workdir / PREFIX_FILE,
                                  cfg)
    prefix = materialize_for(spec, cfg, params)
  if not (workdir / METHOD_FILE).exists():
    if prefix is None:
      raise MethodError(f"{workdir / METHOD_FILE}: no trained weights of method "
                        f"{config.method!r} (did the run complete?)")
    return backbone, prefix, spec, None
  sig, leaves, delta, scale = load_trained(workdir / METHOD_FILE, cfg)
  backbone = merge_backbone(backbone, leaves)
  if not delta:
    return backbone, prefix, spec, None
  if sig["name"] == "lora" and lora_merged(config):
    return deltas.merge_lora(backbone, delta, scale), prefix, spec, None
  return backbone, prefix, spec, Delta(delta, scale)


def lora_merged(config) -> bool:
  """`lora.merge` (default True): decode LoRA folded into the backbone (one kernel per
  projection, as fast as the plain backbone) or unmerged, as a delta (exact either way)."""
  merge = config.get("lora", {}).get("merge", True)
  if not isinstance(merge, bool):
    raise MethodError(f"lora.merge must be True or False, got {merge!r}")
  return merge


def stored_parameters(workdir) -> int | None:
  """Parameters a finished run stores for its task, beside the frozen backbone: the exported
  prefix (its MLP folded away), the method's leaves and an encoder's head, each tensor counted
  once (the head is in both `method.safetensors` and `head.safetensors`); None if it exported
  nothing. This is the paper's per-task count (prefix-tuning's "0.1%")."""
  sizes = {}
  for name in (PREFIX_FILE, METHOD_FILE, HEAD_FILE):
    path = Path(workdir) / name
    if path.is_file():
      with safetensors.safe_open(str(path), "np") as f:
        for key in f.keys():
          tensor = key.removeprefix("backbone/") if name != PREFIX_FILE else f"prefix/{key}"
          sizes[tensor] = math.prod(f.get_slice(key).get_shape())
  return sum(sizes.values()) if sizes else None
