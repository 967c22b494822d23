"""`build_method(config, cfg, backbone)`: what a run trains, decided once, before any compile.

Three kinds of method, all trained through the same step (`train.step`):
  * the prefix family (prefix, prefix_hidden, infix, prompt, ptuning2): a prefix tree;
  * backbone subsets (finetune, finetune_top, bitfit): some backbone leaves, chosen by a regex
    on their paths, move from the frozen backbone into the trained tree;
  * added parameters (lora, adapter, llama_adapter): a `models.deltas` tree passed to the
    model as `delta=`.
The trained tree is `{'prefix': ..., 'backbone': {'a/b/kernel': ...}[, 'delta': ...]}`.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable

import jax
from flax import traverse_util

from prefix_jax.methods import deltas
from prefix_jax.methods import tree as tree_lib
from prefix_jax.methods.errors import MethodError
from prefix_jax.prefixes import PrefixSpec
from prefix_jax.prefixes import count_params

PREFIX_FAMILY = ("prefix", "prefix_hidden", "infix", "prompt", "ptuning2")
SUBSET = ("finetune", "finetune_top", "bitfit")
ADDED = ("lora", "adapter", "llama_adapter")
ALL = PREFIX_FAMILY + SUBSET + ADDED
_TOP = re.compile(r"^finetune_top(\d+)$")


@dataclasses.dataclass(frozen=True)
class Method:
  """What a run trains.

  name:       the config's method (finetune_topK resolved to finetune_top).
  spec:       the prefix spec (prefix family) or None.
  pattern:    regex on backbone leaf paths ('a/b/kernel') of the leaves that train ('' none).
  settings:   the method's own options (recorded in the run signature and the export).
  delta_init: rng -> the added-parameter tree (lora, adapter, llama_adapter) or None.
  lora_scale: alpha / rank (LoRA), 1 otherwise.
  """
  name: str
  spec: PrefixSpec | None = None
  pattern: str = ""
  settings: dict = dataclasses.field(default_factory=dict)
  delta_init: Callable | None = None
  lora_scale: float = 1.0

  @property
  def signature(self) -> dict:
    return {"name": self.name, **self.settings}


def _section(config, name: str) -> dict:
  return dict(config[name]) if name in config else {}


def _block_regex(paths) -> str:
  return "^(" + "|".join(re.escape("/".join(p)) for p in paths) + ")/"


def _head(config) -> str:
  """`train.trainable_pattern` (an encoder task's head): it trains with every method."""
  return config["train"].get("trainable_pattern", "") if "train" in config else ""


def _or(pattern: str, head: str) -> str:
  """Leaves matching either regex ('' matches none)."""
  if not (pattern and head):
    return pattern or head
  return f"(?:{pattern})|(?:{head})"


def _finetune_top(config, backbone) -> Method:
  k = _section(config, "finetune").get("top_layers", 2)
  depth = min(len(v) for v in tree_lib.stacks(backbone).values())
  if not isinstance(k, int) or not 0 < k <= depth:
    raise MethodError(f"finetune.top_layers must be in 1..{depth} for this backbone, got {k!r}")
  return Method("finetune_top", settings={"top_layers": k},
                pattern=_block_regex(tree_lib.top_blocks(backbone, k)))


def _bitfit(config, cfg, backbone) -> Method:
  pattern = r"(^|/)bias$"
  flat = traverse_util.flatten_dict(backbone, sep="/")
  if not any(re.search(pattern, k) for k in flat):
    raise MethodError(f"method 'bitfit' trains biases only, and this {cfg.arch} backbone has no "
                      "bias parameters")
  return Method("bitfit", pattern=pattern)


def _added(name, config, cfg, backbone) -> Method:
  s = _section(config, name)
  if name == "lora":
    rank, alpha = s.get("rank", 8), float(s.get("alpha", 16.0))
    if not isinstance(rank, int) or rank <= 0 or alpha <= 0:
      raise MethodError(f"lora.rank must be a positive int and lora.alpha > 0, got {rank!r}, "
                        f"{alpha!r}")
    targets = deltas.parse_targets(s.get("targets", "q,v"))
    init = functools.partial(deltas.init_lora, cfg, backbone, rank=rank, targets=targets)
    init(_probe_rng())  # a target the backbone lacks fails here, before any compile
    return Method("lora", delta_init=init, lora_scale=alpha / rank,
                  settings={"rank": rank, "alpha": alpha, "targets": ",".join(targets)})
  if name == "adapter":
    dim = deltas.adapter_dim(cfg, backbone, int(s.get("dim", 0)), float(s.get("share", 0.0)),
                             count_params(backbone))
    return Method("adapter", settings={"dim": dim},
                  delta_init=functools.partial(deltas.init_adapters, cfg, backbone, dim=dim))
  length, layers = s.get("length", 10), s.get("layers", 8)
  init = functools.partial(deltas.init_llama_adapter, cfg, backbone, length=length,
                           layers=layers)
  init(_probe_rng())
  return Method("llama_adapter", delta_init=init,
                settings={"length": length, "layers": layers})


def _probe_rng():
  return jax.random.PRNGKey(0)


def check_name(name: str) -> str:
  """The method name resolved (finetune_topK -> finetune_top); MethodError if unknown."""
  if _TOP.match(name):
    return "finetune_top"
  if name not in ALL:
    raise MethodError(f"method {name!r} unknown (choose from {', '.join(ALL)}, finetune_topK)")
  return name


def build_method(config, cfg, backbone: dict) -> Method:
  """The `Method` of `config.method` for this backbone, an encoder task's head training beside
  it; MethodError (one line) if it does not apply."""
  method = _method(config, cfg, backbone)
  return dataclasses.replace(method, pattern=_or(method.pattern, _head(config)))


def _method(config, cfg, backbone: dict) -> Method:
  name = check_name(config.method)
  top = _TOP.match(config.method)
  if top:
    config = dict(config, finetune={"top_layers": int(top.group(1))})
  if name in PREFIX_FAMILY:
    return Method(name, spec=PrefixSpec.from_config(config["prefix"]))
  if name == "finetune":
    return Method("finetune", pattern=".*")
  if name == "finetune_top":
    return _finetune_top(config, backbone)
  if name == "bitfit":
    return _bitfit(config, cfg, backbone)
  return _added(name, config, cfg, backbone)
