"""A resumable, host-sharded, epoch-aware training iterator over encoded examples.

Its whole position is `get_state()` -> a dict of ints (JSON-able, to sit next to an Orbax
checkpoint); the order of epoch e is a pure function of (seed, e), so a restored iterator
yields exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from prefix_jax.data import batching
from prefix_jax.data.encode import Encoded

LAYOUTS = ("decoder", "seq2seq", "classify")


class TrainIterator:
  """Yields training batches (see `batching.pack_train`) of `batch_size` rows per host.

  Global batch k of an epoch is rows [k*G, (k+1)*G) of that epoch's permutation, with
  G = batch_size * process_count; host i takes rows [i*batch_size, (i+1)*batch_size) of it,
  and every host pads to the same bucketed length T. `drop_remainder=False` yields the last
  short global batch with invalid rows (`valid` False, zero weights). `num_epochs=None` loops
  forever.

  `pack_length` > 0 packs instead (`batching.pack_segments`): the G examples of a global batch
  go into rows of that length, as few as fit, rounded up to `row_multiple * process_count`
  (`row_multiple`: local devices x accumulation steps); host i takes its share of the rows.
  `pack_length_step` > 0 shortens each batch's rows to the multiple of it that packs the batch
  into the fewest token slots (`batching.packed_row_length`).
  A step still trains on the same G examples; only the padding is gone.

  `layout` says what a batch is: 'decoder' (`batching.pack_train`: source and target in one
  row), 'seq2seq' (`batching.pack_seq2seq`, decoder input starting with `start_id`) or
  'classify' (`batching.pack_classify`: each target is one class id). Only 'decoder' packs.
  """

  def __init__(self, data: Encoded, *, batch_size: int, pad_id: int, seed: int = 0,
               shuffle: bool = True, num_epochs: int | None = None, drop_remainder: bool = True,
               buckets: Sequence[int] | None = None, padding_side: str = "right",
               process_index: int = 0, process_count: int = 1, pack_length: int = 0,
               row_multiple: int = 1, pack_length_step: int = 0, layout: str = "decoder",
               start_id: int = 0):
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    self._data = data
    self._n = len(data)
    self.batch_size = batch_size
    self._global_b = batch_size * process_count
    if self._n == 0 or (drop_remainder and self._n < self._global_b):
      raise ValueError(f"{self._n} examples cannot fill one global batch of {self._global_b}")
    self._pad_id = pad_id
    self._seed = seed
    self._shuffle = shuffle
    self._num_epochs = num_epochs
    self._drop = drop_remainder
    self._lengths = data.lengths.astype(np.int64) - 1  # inputs drop the last token
    self._buckets = tuple(buckets) if buckets else batching.default_buckets(
        int(self._lengths.max()))
    self._padding_side = padding_side
    if pack_length < 0 or row_multiple < 1 or pack_length_step < 0:
      raise ValueError(f"pack_length and pack_length_step must be >= 0 and row_multiple >= 1, "
                       f"got {pack_length}, {pack_length_step}, {row_multiple}")
    if pack_length and int(self._lengths.max()) > pack_length:
      raise batching.PackingError(
          f"an example has {int(self._lengths.max())} input tokens, more than the packed row "
          f"length {pack_length} (data.pack_length)")
    if layout not in LAYOUTS or (pack_length and layout != "decoder"):
      raise ValueError(f"layout {layout!r} (pack_length {pack_length}) is not one of {LAYOUTS} "
                       "(only 'decoder' rows pack)")
    self._layout, self._start_id = layout, start_id
    self._pack_length, self._row_multiple = pack_length, row_multiple
    self._pack_step = pack_length_step
    self._pi, self._pc = process_index, process_count
    self._epoch, self._step = 0, 0
    self._order_cache: tuple[int, np.ndarray] | None = None

  @property
  def batches_per_epoch(self) -> int:
    full, rest = divmod(self._n, self._global_b)
    return full + (1 if rest and not self._drop else 0)

  def _order(self, epoch: int) -> np.ndarray:
    if self._order_cache is None or self._order_cache[0] != epoch:
      order = (np.random.default_rng([self._seed, epoch]).permutation(self._n)
               if self._shuffle else np.arange(self._n))
      self._order_cache = (epoch, order)
    return self._order_cache[1]

  def get_state(self) -> dict[str, int]:
    return {"epoch": self._epoch, "step_in_epoch": self._step, "seed": self._seed,
            "num_examples": self._n, "global_batch_size": self._global_b,
            "process_count": self._pc}

  def set_state(self, state: dict) -> None:
    """Restores a position from `get_state()`; refuses one taken on a different pipeline."""
    for key, mine in (("seed", self._seed), ("num_examples", self._n),
                      ("global_batch_size", self._global_b), ("process_count", self._pc)):
      if int(state[key]) != mine:
        raise ValueError(f"iterator state has {key}={state[key]} but this iterator has {mine}")
    self._epoch, self._step = int(state["epoch"]), int(state["step_in_epoch"])

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._step >= self.batches_per_epoch:
      self._epoch, self._step = self._epoch + 1, 0
    if self._num_epochs is not None and self._epoch >= self._num_epochs:
      raise StopIteration
    order = self._order(self._epoch)
    glob = order[self._step * self._global_b:(self._step + 1) * self._global_b]
    self._step += 1
    if self._pack_length:
      return self._packed(glob)
    local = glob[self._pi * self.batch_size:(self._pi + 1) * self.batch_size]
    if self._layout != "decoder":
      return self._other_layout(glob, local)
    length = batching.bucket_length(int(self._lengths[glob].max()), self._buckets)
    d = self._data
    batch = batching.pack_train([d.source[i] for i in local], [d.target[i] for i in local],
                                [int(d.task[i]) for i in local], batch_size=self.batch_size,
                                length=length, pad_id=self._pad_id,
                                padding_side=self._padding_side)
    return batch

  def _other_layout(self, glob: np.ndarray, local: np.ndarray) -> dict[str, np.ndarray]:
    """A seq2seq or classification batch; lengths bucketed over the global batch."""
    d = self._data
    longest = lambda rows: batching.bucket_length(max(len(rows[i]) for i in glob), self._buckets)
    src, tgt, task = ([d.source[i] for i in local], [d.target[i] for i in local],
                      [int(d.task[i]) for i in local])
    if self._layout == "classify":
      return batching.pack_classify(src, tgt, task, batch_size=self.batch_size,
                                    length=longest(d.source), pad_id=self._pad_id)
    return batching.pack_seq2seq(src, tgt, task, batch_size=self.batch_size,
                                 source_length=longest(d.source),
                                 target_length=longest(d.target), pad_id=self._pad_id,
                                 start_id=self._start_id)

  def _packed(self, glob: np.ndarray) -> dict[str, np.ndarray]:
    """The whole global batch packed (identically on every host), then this host's rows."""
    d = self._data
    batch = batching.pack_segments(
        [d.source[i] for i in glob], [d.target[i] for i in glob],
        [int(d.task[i]) for i in glob], length=self._pack_length, pad_id=self._pad_id,
        row_multiple=self._row_multiple * self._pc, length_step=self._pack_step)
    return batching.host_share(batch, self._pi, self._pc)

  @property
  def epoch(self) -> int:
    return self._epoch
