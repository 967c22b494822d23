"""What the trainer and evaluator take from the data layer, shaped by the run's config and
the backbone's kind (`train.loss.model_kind`): decoder-only rows (source, separator, target),
encoder-decoder rows (source; target behind the decoder start token) or classification rows
(source; one class id).

The context budget is checked up front (`check_budget`): the prefix, the longest source and
target the config allows (`data.max_source_len`, `data.max_target_len`) and the new tokens
of decoding must fit the model's positions. Examples longer than those maxima are cut to them
and counted (`data.overflow='truncate'`) or refused (`'refuse'`).
"""
from __future__ import annotations

import logging
import re

import numpy as np

from prefix_jax.errors import ConfigError, UserError
from prefix_jax import data as data_lib
from prefix_jax.data.batching import host_share
from prefix_jax.data.encode import Encoded
from prefix_jax.data import subsets
from prefix_jax.data.report import BadInputReport
from prefix_jax.data.tasks import TaskOptions
from prefix_jax.train.loss import add_loss_positions, model_kind

log = logging.getLogger(__name__)

OVERFLOW = ("truncate", "refuse")
CUT_REASONS = ("source_truncated", "target_truncated")


class BudgetError(UserError, ValueError):
  """Prefix + source + target (+ new tokens) cannot fit the model's positions, or examples
  exceed the configured maxima with `data.overflow='refuse'`."""


def _pad_id(tokenizer) -> int:
  return tokenizer.pad_id if tokenizer.pad_id is not None else tokenizer.eos_id


def _lowdata(config):
  n = config.data.num_train_examples
  return (n, config.data.subset_seed) if n else None


def prefix_length(config) -> int:
  return 0 if config.method == "finetune" else config.prefix.length


def _needs(config, cfg) -> dict[str, int]:
  """Positions each pass of the run needs, by what it holds (see `check_budget`)."""
  lp, d = prefix_length(config), config.data
  kind = model_kind(cfg)
  if kind == "encoder":
    return {"prefix + source": lp + d.max_source_len}
  if kind == "seq2seq":
    return {"prefix + source (encoder)": lp + d.max_source_len,
            "prefix + target + EOS (decoder)": lp + d.max_target_len + 1,
            "prefix + max_new_tokens (decoder)": lp + config.decode.max_new_tokens}
  return {"prefix + source + separator + target": lp + d.max_source_len + 1 + d.max_target_len,
          "prefix + source + separator + max_new_tokens":
              lp + d.max_source_len + 1 + config.decode.max_new_tokens}


def check_budget(config, cfg) -> None:
  """One-line `BudgetError` naming the numbers when the prefix, the configured maxima
  (`data.max_source_len`, `data.max_target_len`, `decode.max_new_tokens`) and the model's
  `max_positions` do not add up. Call before anything compiles."""
  lp, n = prefix_length(config), cfg.max_positions
  if lp >= n:
    raise BudgetError(f"prefix length {lp} >= the model's {n} positions: no room for any token "
                      "(lower prefix.length)")
  if config.data.get("overflow", "truncate") not in OVERFLOW:
    raise BudgetError(f"data.overflow must be one of {OVERFLOW}, got {config.data.overflow!r}")
  d = config.data
  for what, need in _needs(config, cfg).items():
    if need > n:
      raise BudgetError(f"{what} = {need} exceeds the model's {n} positions (prefix {lp}, "
                        f"data.max_source_len {d.max_source_len}, data.max_target_len "
                        f"{d.max_target_len}, decode.max_new_tokens "
                        f"{config.decode.max_new_tokens}): lower one of them")


def _check_cuts(config, enc: Encoded, split: str) -> dict[str, int]:
  """{reason: count} of examples cut to the configured maxima; refused when so configured."""
  cut = {r: enc.report.count(r) for r in CUT_REASONS if enc.report.count(r)}
  if cut and config.data.get("overflow", "truncate") == "refuse":
    reason = next(iter(cut))
    raise BudgetError(f"{cut[reason]} examples of {split} exceed data.max_"
                      f"{reason.split('_')[0]}_len (e.g. {enc.report.ids(reason)[0]}) and "
                      "data.overflow='refuse'; set data.overflow='truncate' to cut them")
  if cut:
    log.warning("%s: examples cut to the configured maxima: %s", split, cut)
  return cut


def label_words(config) -> tuple[str, ...]:
  """The class names of a classification task, in label-id order."""
  if config.task != "sst2":
    raise BudgetError(f"task {config.task!r} has no classification labels (only sst2)")
  return TaskOptions().sst2_labels


def _encode_classes(config, tokenizer, pairs) -> Encoded:
  """Source tokens (the tokenizer's own specials, e.g. [CLS] ... [SEP]) cut to
  data.max_source_len (the closing [SEP] kept); target = [class id] of the label word."""
  words = label_words(config)
  report = BadInputReport("tokenization")
  cap = config.data.max_source_len
  out = Encoded([], [], [], np.zeros(0, np.int32), None, report)
  for ex in pairs:
    ids = tokenizer.encode(ex.source)
    if len(ids) > cap:  # keep a closing special token (BERT's [SEP]) where there is one
      ids = ids[:cap - 1] + ids[-1:] if ids[-1] == tokenizer.eos_id else ids[:cap]
      report.add("source_truncated", ex.id)
    out.ids.append(ex.id)
    out.source.append(np.asarray(ids, np.int32))
    out.target.append(np.asarray([words.index(ex.target)], np.int32))
  out.task = np.asarray([ex.task for ex in pairs], np.int32)
  return out


def _drop_double_eos(enc: Encoded, eos: int) -> Encoded:
  """A tokenizer that adds its own EOS (BART's) would end each target with two."""
  enc.target = [t[:-1] if len(t) > 1 and t[-1] == t[-2] == eos else t for t in enc.target]
  return enc


def encode_for_model(config, tokenizer, cfg, pairs) -> Encoded:
  """Training pairs -> token ids laid out for the backbone's kind (see the module doc)."""
  kind = model_kind(cfg)
  if kind == "encoder":
    return _encode_classes(config, tokenizer, pairs)
  d = config.data
  # The budget check guarantees these maxima fit, so max_length never cuts.
  max_length = cfg.max_positions + d.max_source_len + d.max_target_len + 2
  if kind == "seq2seq":
    enc = data_lib.encode_examples(pairs, tokenizer, max_length=max_length,
                                   max_source_length=d.max_source_len,
                                   max_target_length=d.max_target_len, sep=[],
                                   leading_space=False)
    return _drop_double_eos(enc, tokenizer.eos_id)
  return data_lib.encode_examples(pairs, tokenizer, max_length=max_length,
                                  max_source_length=d.max_source_len,
                                  max_target_length=d.max_target_len)


def layout(cfg) -> str:
  """The `TrainIterator` layout of the backbone's kind."""
  return {"decoder": "decoder", "seq2seq": "seq2seq", "encoder": "classify"}[model_kind(cfg)]


def start_id(cfg, tokenizer) -> int:
  """The decoder start token of an encoder-decoder (HF: decoder_start_token_id)."""
  start = cfg.decoder_start_token_id
  return int(start if start is not None else tokenizer.eos_id)


class _Batches:
  """Global batches (one TrainIterator over every host's examples, looping over epochs
  forever) with their loss positions grouped per device x micro-batch, then this host's
  share of rows and groups. Every host lays out the same global batch, so shapes agree
  across hosts; the position is checkpointable."""

  def __init__(self, it, groups: int, process_index: int = 0, process_count: int = 1,
               loss_positions: bool = True, cut: dict | None = None, loss_multiple: int = 16):
    self._it = it
    self._loss_positions = loss_positions
    self._loss_multiple = loss_multiple
    self.cut = cut or {}  # {reason: count} of examples cut to the configured maxima
    self._groups = groups
    self._pi, self._pc = process_index, process_count
    self.steps_per_epoch = it.batches_per_epoch

  def next_batch(self):
    batch = next(self._it)
    rows = len(batch["valid"])
    groups = self._groups if rows % self._groups == 0 else None  # else one group per row
    if self._loss_positions:
      batch = add_loss_positions(batch, self._loss_multiple, groups=groups)
    return host_share(batch, self._pi, self._pc)

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


def _scheme(config) -> str:
  return config.data.get("split_scheme", "standard")


def _encode_pairs(config, tokenizer, cfg, split, lowdata=None, limit=0):
  name, bounds = split_slice(split)
  pairs, _ = data_lib.load_task(config.task, train_split=name, eval_split=None,
                                lowdata=lowdata, split_scheme=_scheme(config))
  pairs = _take(pairs, bounds)
  if limit:
    pairs = pairs[:limit]
  return encode_for_model(config, tokenizer, cfg, pairs)


def buckets(config, enc) -> tuple[int, ...]:
  """Padded lengths: multiples of `data.bucket_size`. Finer buckets pad less but compile one
  step per length seen."""
  return data_lib.default_buckets(int(enc.lengths.max()), config.data.bucket_size)


def train_iterator(config, tokenizer, cfg, process_index: int = 0, process_count: int = 1,
                   num_devices: int = 1):
  """Shuffled (seeded) training batches of `train.batch_size` examples over all hosts (this
  host gets its share): bucketed rows, or with `data.pack_length` packed rows, their count a
  multiple of `num_devices` (global) x `train.accum_steps`."""
  check_budget(config, cfg)
  enc = _encode_pairs(config, tokenizer, cfg, config.data.train_split, _lowdata(config))
  cut = _check_cuts(config, enc, config.data.train_split)
  shards = num_devices * config.train.accum_steps
  it = data_lib.TrainIterator(enc, batch_size=config.train.batch_size,
                              buckets=buckets(config, enc),
                              pad_id=_pad_id(tokenizer), seed=config.seed, num_epochs=None,
                              padding_side=config.data.padding,
                              pack_length=config.data.get("pack_length", 0),
                              pack_length_step=config.data.get("pack_length_step", 0),
                              row_multiple=shards, layout=layout(cfg),
                              start_id=start_id(cfg, tokenizer))
  return _Batches(it, shards, process_index, process_count,
                  loss_positions=layout(cfg) == "decoder", cut=cut,
                  loss_multiple=config.data.get("loss_pos_multiple", 16))


def eval_loss_batches(config, tokenizer, cfg) -> list[dict]:
  """The first `data.num_eval_loss_examples` pairs of the eval split, for validation loss."""
  n = config.data.num_eval_loss_examples
  if not n:
    return []
  enc = _encode_pairs(config, tokenizer, cfg, config.data.eval_split, limit=n)
  it = data_lib.TrainIterator(enc, batch_size=min(config.train.batch_size, len(enc)),
                              buckets=buckets(config, enc),
                              pad_id=_pad_id(tokenizer), shuffle=False, num_epochs=1,
                              drop_remainder=False, padding_side=config.data.padding,
                              layout=layout(cfg), start_id=start_id(cfg, tokenizer))
  if layout(cfg) != "decoder":
    return list(it)
  return [add_loss_positions(b, config.data.get("loss_pos_multiple", 16), groups=1) for b in it]


def _eval_records(config, split):
  name, bounds = split_slice(split)
  _, records = data_lib.load_task(config.task, train_split=None, eval_split=name,
                                  split_scheme=_scheme(config))
  records = _take(records, bounds)
  n = config.decode.num_examples
  how = config.decode.get("subset", "first")
  if how not in ("first", "spread"):
    raise ConfigError(f"decode.subset={how!r} is not 'first' or 'spread'")
  if n and how == "first":
    records = records[:n]
  elif n:
    records = subsets.spread(records, n, _strata(config, name, records))
  return name, records


def _strata(config, split: str, records) -> list | None:
  """What an evaluation subset keeps in equal shares: WebNLG's seen and unseen categories."""
  if config.task != "webnlg":
    return None
  unseen = _webnlg_unseen(split)
  return [unseen.get(r.id, False) for r in records]


def _webnlg_unseen(split: str) -> dict[str, bool]:
  """WebNLG record id -> whether its category is unseen in training."""
  return {r["id"]: bool(r["unseen"]) for r in data_lib.read_split("webnlg", split)}


def classification_batches(config, tokenizer, split) -> tuple[list[str], list[dict]]:
  """(gold label word per example, right-padded batches with `valid`) of `split`, the first
  `decode.num_examples` (0: all) examples in order."""
  _, records = _eval_records(config, split)
  pairs = [data_lib.TextExample(r.id, r.source, r.references[0], r.task) for r in records]
  enc = _encode_classes(config, tokenizer, pairs)
  it = data_lib.TrainIterator(enc, batch_size=min(config.decode.batch_size, len(enc)),
                              buckets=buckets(config, enc), pad_id=_pad_id(tokenizer),
                              shuffle=False, num_epochs=1, drop_remainder=False,
                              layout="classify")
  return [p.target for p in pairs], list(it)


def generation_batches(config, tokenizer, cfg, split):
  """(references per input, extra metric kwargs, left-padded prompt batches) of `split`."""
  name, records = _eval_records(config, split)
  plain = {} if model_kind(cfg) == "decoder" else dict(sep=[], leading_space=False)
  enc = data_lib.encode_eval(records, tokenizer, max_source_length=config.data.max_source_len,
                             **plain)
  batches, refs = [], []
  for eb in data_lib.eval_batches(enc, batch_size=config.decode.batch_size,
                                  pad_id=_pad_id(tokenizer), padding_side="left"):
    batches.append(eb.arrays)
    refs.extend(eb.references)
  extra = {}
  if config.task == "webnlg":
    unseen = _webnlg_unseen(name)
    extra["seen"] = [not unseen.get(i, False) for i in enc.ids]
  return [list(r) for r in refs], extra, batches
