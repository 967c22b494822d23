"""What the trainer and evaluator take from the data layer, shaped by the run's config."""
from __future__ import annotations

import re

from prefix_jax import data as data_lib
from prefix_jax.data.batching import host_share
from prefix_jax.train.loss import add_loss_positions


def _pad_id(tokenizer) -> int:
  return tokenizer.pad_id if tokenizer.pad_id is not None else tokenizer.eos_id


def _lowdata(config):
  n = config.data.num_train_examples
  return (n, config.data.subset_seed) if n else None


def _max_length(config, cfg) -> int:
  room = cfg.max_positions - (config.prefix.length if config.method != "finetune" else 0)
  return min(room, config.data.max_source_len + config.data.max_target_len + 2)


class _Batches:
  """Global batches (one TrainIterator over every host's examples, looping over epochs
  forever) with their loss positions grouped per device x micro-batch, then this host's
  share of rows and groups. Every host lays out the same global batch, so shapes agree
  across hosts; the position is checkpointable."""

  def __init__(self, it, groups: int, process_index: int = 0, process_count: int = 1):
    self._it = it
    self._groups = groups
    self._pi, self._pc = process_index, process_count
    self.steps_per_epoch = it.batches_per_epoch

  def next_batch(self):
    batch = next(self._it)
    rows = len(batch["valid"])
    groups = self._groups if rows % self._groups == 0 else None  # else one group per row
    return host_share(add_loss_positions(batch, groups=groups), self._pi, self._pc)

  def get_state(self):
    return self._it.get_state()

  def set_state(self, state):
    self._it.set_state(state)


def split_slice(split: str) -> tuple[str, slice]:
  """'validation[:80%]' -> ('validation', slice of the first 80%); ints work too."""
  m = re.fullmatch(r"(\w+)(?:\[(-?\d*%?):(-?\d*%?)\])?", split)
  if not m:
    raise ValueError(f"split {split!r} is not NAME or NAME[start:end] (ints or percents)")
  return m.group(1), (m.group(2) or "", m.group(3) or "")


def _take(items: list, bounds) -> list:
  def idx(b):
    if not b:
      return None
    return int(len(items) * int(b[:-1]) / 100) if b.endswith("%") else int(b)
  return items[idx(bounds[0]):idx(bounds[1])]


def _encode_pairs(config, tokenizer, cfg, split, lowdata=None, limit=0):
  name, bounds = split_slice(split)
  pairs, _ = data_lib.load_task(config.task, train_split=name, eval_split=None,
                                lowdata=lowdata)
  pairs = _take(pairs, bounds)
  if limit:
    pairs = pairs[:limit]
  return data_lib.encode_examples(pairs, tokenizer, max_length=_max_length(config, cfg),
                                  max_source_length=config.data.max_source_len,
                                  max_target_length=config.data.max_target_len)


def buckets(config, enc) -> tuple[int, ...]:
  """Padded lengths: multiples of `data.bucket_size`. Finer buckets pad less but compile one
  step per length seen."""
  return data_lib.default_buckets(int(enc.lengths.max()), config.data.bucket_size)


def train_iterator(config, tokenizer, cfg, process_index: int = 0, process_count: int = 1,
                   num_devices: int = 1):
  """Shuffled (seeded) training batches of `train.batch_size` examples over all hosts (this
  host gets its share): bucketed rows, or with `data.pack_length` packed rows, their count a
  multiple of `num_devices` (global) x `train.accum_steps`."""
  enc = _encode_pairs(config, tokenizer, cfg, config.data.train_split, _lowdata(config))
  shards = num_devices * config.train.accum_steps
  it = data_lib.TrainIterator(enc, batch_size=config.train.batch_size,
                              buckets=buckets(config, enc),
                              pad_id=_pad_id(tokenizer), seed=config.seed, num_epochs=None,
                              padding_side=config.data.padding,
                              pack_length=config.data.get("pack_length", 0),
                              pack_length_step=config.data.get("pack_length_step", 0),
                              row_multiple=shards)
  return _Batches(it, shards, process_index, process_count)


def eval_loss_batches(config, tokenizer, cfg) -> list[dict]:
  """The first `data.num_eval_loss_examples` pairs of the eval split, for validation loss."""
  n = config.data.num_eval_loss_examples
  if not n:
    return []
  enc = _encode_pairs(config, tokenizer, cfg, config.data.eval_split, limit=n)
  it = data_lib.TrainIterator(enc, batch_size=min(config.train.batch_size, len(enc)),
                              buckets=buckets(config, enc),
                              pad_id=_pad_id(tokenizer), shuffle=False, num_epochs=1,
                              drop_remainder=False, padding_side=config.data.padding)
  return [add_loss_positions(b, groups=1) for b in it]


def generation_batches(config, tokenizer, cfg, split):
  """(references per input, extra metric kwargs, left-padded prompt batches) of `split`."""
  name, bounds = split_slice(split)
  _, records = data_lib.load_task(config.task, train_split=None, eval_split=name)
  records = _take(records, bounds)
  if config.decode.num_examples:
    records = records[:config.decode.num_examples]
  enc = data_lib.encode_eval(records, tokenizer, max_source_length=config.data.max_source_len)
  batches, refs = [], []
  for eb in data_lib.eval_batches(enc, batch_size=config.decode.batch_size,
                                  pad_id=_pad_id(tokenizer), padding_side="left"):
    batches.append(eb.arrays)
    refs.extend(eb.references)
  extra = {}
  if config.task == "webnlg":
    unseen = {r["id"]: bool(r["unseen"]) for r in data_lib.read_split("webnlg", name)}
    extra["seen"] = [not unseen.get(i, False) for i in enc.ids]
  return [list(r) for r in refs], extra, batches
