"""The config every task file starts from, and the `get_config(arg)` argument parser.

A task file (`configs/e2e.py`) calls `base_config()`, sets the paper's values, and returns
`apply_arg(config, arg)`, so `--config=configs/e2e.py:model=smollm2-135m,method=prefix,
prefix_len=5` works; `--config.train.batch_size=4` overrides go through absl's config_flags.
"""
from __future__ import annotations

import re

import ml_collections

METHODS = {  # config-level method -> prefix spec fields
    "prefix": dict(method="kv", placement="prefix"),       # Li & Liang's implementation
    "prefix_hidden": dict(method="hidden", placement="prefix"),  # textbook hidden-state form
    "infix": dict(method="kv", placement="infix"),
    "prompt": dict(method="prompt", placement="prefix", reparam="none"),  # Lester et al.
    "ptuning2": dict(method="kv", placement="prefix", reparam="none"),  # deep prompt tuning
    "finetune": None,                                        # baseline: every backbone weight
    "finetune_top": None,        # only the top `finetune.top_layers` layers (finetune_topK)
    "bitfit": None,              # biases only
    "adapter": None,             # bottleneck adapters (adapter.dim or adapter.share)
    "lora": None,                # lora.rank, lora.alpha, lora.targets
    "llama_adapter": None,       # adaption prompts + zero gates (llama_adapter.length/layers)
}
_TOP_K = re.compile(r"^finetune_top(\d+)$")

SHORTCUTS = {
    "model": "model", "method": "method", "prefix_len": "prefix.length", "lr": "optim.learning_rate",
    "epochs": "train.num_epochs", "steps": "train.num_steps", "batch": "train.batch_size",
    "seed": "seed", "n": "data.num_train_examples", "reparam": "prefix.reparam",
    "init": "prefix.init", "dtype": "dtype", "top_layers": "finetune.top_layers",
    "adapter_dim": "adapter.dim", "adapter_share": "adapter.share", "lora_rank": "lora.rank",
    "lora_alpha": "lora.alpha", "lora_merge": "lora.merge",
}


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = "smollm2-135m"
  c.method = "prefix"
  c.dtype = "float32"
  c.seed = 0
  c.task = "e2e"
  c.metrics = ""  # the task's metrics to score: '' all, or e.g. 'bleu+nist' (metrics/names.py)
  c.prefix = ml_collections.ConfigDict(dict(
      method="kv", length=5, reparam="mlp", mlp_hidden=512, init="random",
      init_text="table-to-text:", init_std=0.02, placement="prefix", num_tasks=0))
  c.finetune = ml_collections.ConfigDict(dict(top_layers=2))
  c.adapter = ml_collections.ConfigDict(dict(dim=32, share=0.0))  # share > 0 wins over dim
  # merge: evaluate decodes LoRA folded into the kernels (True) or as a delta (False)
  c.lora = ml_collections.ConfigDict(dict(rank=8, alpha=16.0, targets="q,v", merge=True))
  c.llama_adapter = ml_collections.ConfigDict(dict(length=10, layers=8))
  c.data = ml_collections.ConfigDict(dict(
      train_split="train", eval_split="validation", test_split="test",
      max_source_len=256, max_target_len=128, bucket_size=16, num_train_examples=0,
      num_eval_examples=0, num_eval_loss_examples=64, subset_seed=0, padding="right",
      pack_length=0, pack_length_step=0,
      loss_pos_multiple=16,  # a batch's loss positions padded to a multiple: fewer shapes
      overflow="truncate",  # beyond max_source_len / max_target_len: 'truncate' | 'refuse'
      split_scheme="standard"))  # xsum: news_to_sports | within_news; webnlg: seen_to_unseen
  c.optim = ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=5e-5, schedule="linear", warmup_steps=0, weight_decay=0.0,
      b1=0.9, b2=0.999, eps=1e-8, grad_clip=1.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=10, accum_steps=1, num_epochs=5, num_steps=0, log_every=50, eval_every=0,
      checkpoint_every=500, keep_checkpoints=2, num_devices=-1, fsdp=False,
      trainable_pattern="",
      remat="dots"))  # what each block saves for backward: none | dots | full (models.remat)
  c.decode = ml_collections.ConfigDict(dict(
      beam_size=5, max_new_tokens=100, min_length=1, length_penalty=0.0, batch_size=16,
      ban_newlines=True, num_examples=0, no_repeat_ngram_size=0,
      subset="first"))  # which num_examples: first | spread (data.subsets.spread)
  c.distributed = ml_collections.ConfigDict(dict(
      num_processes=1, process_id=0, coordinator_address="", cpu_collectives=""))
  return c


def _coerce(old, text: str):
  if isinstance(old, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"expected a bool, got {text!r}")
    return text.lower() in ("true", "1")
  if isinstance(old, int):
    return int(text)
  if isinstance(old, float):
    return float(text)
  return text


def apply_method(c: ml_collections.ConfigDict) -> None:
  top = _TOP_K.match(c.method)
  if top:  # the paper's FT-top2 is finetune_top with top_layers=2
    c.method, c.finetune.top_layers = "finetune_top", int(top.group(1))
  # An unknown method is left for the trainer to reject (`methods.check_name`: one line, exit 2).
  fields = METHODS.get(c.method)
  if fields:
    for k, v in fields.items():
      c.prefix[k] = v


def apply_arg(c: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies `key=value,key=value` (shortcuts above or dotted paths); unknown keys fail.
  Setting `method` applies its prefix fields at that point (later keys may refine them)."""
  apply_method(c)
  if arg:
    for item in arg.split(","):
      if "=" not in item:
        raise ValueError(f"config argument {item!r} is not key=value")
      key, value = (s.strip() for s in item.split("=", 1))
      path = SHORTCUTS.get(key, key).split(".")
      node = c
      for p in path[:-1]:
        if p not in node:
          raise ValueError(f"unknown config key {key!r}")
        node = node[p]
      if path[-1] not in node:
        raise ValueError(f"unknown config key {key!r} (shortcuts: {sorted(SHORTCUTS)})")
      try:
        node[path[-1]] = _coerce(node[path[-1]], value)
      except ValueError as e:
        raise ValueError(f"config key {key!r}: {e}") from None
      if key == "method":
        apply_method(c)
  return c
