"""Padding token rows into fixed-shape numpy batches, with lengths rounded up to buckets.

Bucketing bounds recompilation: a jitted step sees at most `len(buckets)` shapes [B, T].
Packing (`pack_segments`) instead puts several examples in each row of a fixed length.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Iterator, Sequence

import numpy as np

from prefix_jax.data.encode import Encoded
from prefix_jax.errors import UserError


def default_buckets(max_length: int, step: int = 16) -> tuple[int, ...]:
  """Multiples of `step` below `max_length`, then `max_length` itself. Padding to the next
  multiple of 16 wastes < 16 tokens a row (powers of two waste up to half) for one compiled
  step per length seen."""
  return tuple(range(step, max_length, step)) + (max_length,)


def bucket_length(length: int, buckets: Sequence[int]) -> int:
  """The smallest bucket >= length."""
  i = bisect.bisect_left(buckets, length)
  if i == len(buckets):
    raise ValueError(f"length {length} exceeds the largest bucket {buckets[-1]}")
  return int(buckets[i])


def pack_train(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray],
               tasks: Sequence[int], *, batch_size: int, length: int, pad_id: int,
               padding_side: str = "right") -> dict[str, np.ndarray]:
  """Rows (source incl. separator, target incl. EOS) -> the training batch.

  Returns `inputs` int32 [B, T] (full sequence without its last token), `targets` int32 [B, T]
  (the next token), `weights` float32 [B, T] (1 where the target is a target-side token, EOS
  included), `mask` bool [B, T] (real tokens of `inputs`), `prefix_at` int32 [B] (index in
  `inputs` of the first target-side token = where an infix prefix goes), `task` int32 [B],
  `valid` bool [B] (False for the all-padding rows that fill a short batch).
  """
  if padding_side not in ("right", "left"):
    raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
  n_rows = len(sources)
  if n_rows > batch_size:
    raise ValueError(f"{n_rows} rows do not fit a batch of {batch_size}")
  b, t = batch_size, length
  batch = {
      "inputs": np.full((b, t), pad_id, np.int32),
      "targets": np.full((b, t), pad_id, np.int32),
      "weights": np.zeros((b, t), np.float32),
      "mask": np.zeros((b, t), bool),
      "prefix_at": np.zeros((b,), np.int32),
      "task": np.zeros((b,), np.int32),
      "valid": np.zeros((b,), bool),
  }
  for i, (src, tgt) in enumerate(zip(sources, targets)):
    full = np.concatenate([src, tgt])
    n = len(full) - 1
    if n > t:
      raise ValueError(f"row {i} has {n} input tokens, more than the batch length {t}")
    off = 0 if padding_side == "right" else t - n
    batch["inputs"][i, off:off + n] = full[:-1]
    batch["targets"][i, off:off + n] = full[1:]
    batch["weights"][i, off + len(src) - 1:off + n] = 1.0
    batch["mask"][i, off:off + n] = True
    batch["prefix_at"][i] = off + len(src)
    batch["task"][i] = tasks[i]
    batch["valid"][i] = True
  return batch


class PackingError(UserError, ValueError):
  """Examples that cannot be packed as asked (one longer than a row)."""


def first_fit_rows(lengths: Sequence[int], length: int) -> list[list[int]]:
  """Assigns items of `lengths` to rows of capacity `length`: first fit, longest first (ties
  in index order, so the result is a pure function of the input). Returns item indices per
  row, each row in index order."""
  order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
  rows: list[list[int]] = []
  room: list[int] = []
  for i in order:
    n = lengths[i]
    if n > length:
      raise PackingError(f"example {i} has {n} input tokens, more than the packed row length "
                         f"{length}")
    for r, free in enumerate(room):
      if n <= free:
        rows[r].append(i)
        room[r] -= n
        break
    else:
      rows.append([i])
      room.append(length - n)
  return [sorted(r) for r in rows]


def packed_row_count(num_rows: int, multiple: int) -> int:
  """`num_rows` rounded up to a multiple of `multiple` (devices x accumulation steps)."""
  return -(-max(num_rows, 1) // multiple) * multiple


def _task_rows(lengths: Sequence[int], tasks: Sequence[int],
               length: int) -> list[tuple[int, list[int]]]:
  """(task, example indices) per row: first fit within each task, tasks in id order."""
  rows: list[tuple[int, list[int]]] = []
  for task in sorted(set(int(k) for k in tasks)):
    members = [i for i, k in enumerate(tasks) if int(k) == task]
    for row in first_fit_rows([lengths[i] for i in members], length):
      rows.append((task, [members[j] for j in row]))
  return rows


def packed_row_length(lengths: Sequence[int], tasks: Sequence[int], *, length: int,
                      step: int, row_multiple: int = 1) -> int:
  """The row length, a multiple of `step` up to `length` (or `length` itself), whose packing
  of these examples has the fewest token slots (rows x length; ties: the shorter rows, whose
  attention is cheaper). `step` 0: always `length`."""
  if step <= 0:
    return length
  longest = max(lengths, default=1)
  if longest > length:
    raise PackingError(f"an example has {longest} input tokens, more than the packed row "
                       f"length {length}")
  candidates = sorted({*range(-(-longest // step) * step, length, step), length})
  def slots(n: int) -> tuple[int, int]:
    return packed_row_count(len(_task_rows(lengths, tasks, n)), row_multiple) * n, n
  return min(candidates, key=slots)


def pack_segments(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                  tasks: Sequence[int], *, length: int, pad_id: int,
                  row_multiple: int = 1, length_step: int = 0) -> dict[str, np.ndarray]:
  """Several examples per row (packing), for training without padding waste.

  Examples are placed by `first_fit_rows`; only examples of the same task share a row, so a
  row's prefix is its task's. The row count R is what the examples need, rounded up to
  `row_multiple`. The row length T is `length`, or with `length_step` > 0 the one
  `packed_row_length` picks for these examples (each (R, T) seen compiles the step once).
  Same keys as `pack_train`, shapes [R, T] / [R], plus `segments` int32
  [R, T] (1, 2, ... per example of a row, 0 on padding; the model keeps examples apart by it
  and restarts positions at each) and `num_examples` int32 [R] (examples per row).
  `prefix_at` is 0 (packing serves prefix placement only).
  """
  lengths = [len(s) + len(t) - 1 for s, t in zip(sources, targets)]
  length = packed_row_length(lengths, tasks, length=length, step=length_step,
                             row_multiple=row_multiple)
  rows = _task_rows(lengths, tasks, length)
  r, t = packed_row_count(len(rows), row_multiple), length
  batch = {
      "inputs": np.full((r, t), pad_id, np.int32),
      "targets": np.full((r, t), pad_id, np.int32),
      "weights": np.zeros((r, t), np.float32),
      "mask": np.zeros((r, t), bool),
      "segments": np.zeros((r, t), np.int32),
      "prefix_at": np.zeros((r,), np.int32),
      "task": np.zeros((r,), np.int32),
      "valid": np.zeros((r,), bool),
      "num_examples": np.zeros((r,), np.int32),
  }
  for row, (task, members) in enumerate(rows):
    off = 0
    for seg, i in enumerate(members, start=1):
      full = np.concatenate([sources[i], targets[i]])
      n = len(full) - 1
      batch["inputs"][row, off:off + n] = full[:-1]
      batch["targets"][row, off:off + n] = full[1:]
      batch["weights"][row, off + len(sources[i]) - 1:off + n] = 1.0
      batch["mask"][row, off:off + n] = True
      batch["segments"][row, off:off + n] = seg
      off += n
    batch["task"][row] = task
    batch["valid"][row] = True
    batch["num_examples"][row] = len(members)
  return batch


def host_share(batch: dict[str, np.ndarray], process_index: int,
               process_count: int) -> dict[str, np.ndarray]:
  """This host's contiguous share of every array's leading axis (rows, or loss groups)."""
  if process_count == 1:
    return batch
  def share(x):
    n = x.shape[0] // process_count
    return x[process_index * n:(process_index + 1) * n]
  return {k: share(v) for k, v in batch.items()}


def pack_prompts(sources: Sequence[np.ndarray], tasks: Sequence[int], *, batch_size: int,
                 length: int, pad_id: int, padding_side: str = "left") -> dict[str, np.ndarray]:
  """Prompts (source incl. separator) -> `inputs` int32 [B, S], `mask` bool [B, S],
  `valid` bool [B], `task` int32 [B]. Left padding puts every prompt's end at S - 1."""
  if padding_side not in ("right", "left"):
    raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
  b, s = batch_size, length
  batch = {"inputs": np.full((b, s), pad_id, np.int32), "mask": np.zeros((b, s), bool),
           "valid": np.zeros((b,), bool), "task": np.zeros((b,), np.int32)}
  for i, src in enumerate(sources):
    n = len(src)
    off = 0 if padding_side == "right" else s - n
    batch["inputs"][i, off:off + n] = src
    batch["mask"][i, off:off + n] = True
    batch["valid"][i] = True
    batch["task"][i] = tasks[i]
  return batch


def pack_seq2seq(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                 tasks: Sequence[int], *, batch_size: int, source_length: int,
                 target_length: int, pad_id: int, start_id: int) -> dict[str, np.ndarray]:
  """Encoder-decoder rows (right-padded): `inputs` / `mask` [B, S] the source, `dec_inputs` /
  `dec_mask` [B, T] the target shifted right behind `start_id` (HF's decoder input),
  `targets` int32 [B, T] the target (EOS included), `weights` float32 [B, T] 1 on target
  tokens, `task` [B], `valid` [B]."""
  kw = dict(batch_size=batch_size, pad_id=pad_id, padding_side="right")
  enc = pack_prompts(sources, tasks, length=source_length, **kw)
  shifted = [np.concatenate([[start_id], t[:-1]]).astype(np.int32) for t in targets]
  dec = pack_prompts(shifted, tasks, length=target_length, **kw)
  labels = pack_prompts(targets, tasks, length=target_length, **kw)
  return dict(enc, dec_inputs=dec["inputs"], dec_mask=dec["mask"], targets=labels["inputs"],
              weights=labels["mask"].astype(np.float32))


def pack_classify(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                  tasks: Sequence[int], *, batch_size: int, length: int,
                  pad_id: int) -> dict[str, np.ndarray]:
  """Sequence classification rows (right-padded): `inputs` / `mask` [B, S], `labels` int32 [B]
  (each target holds one id: the class), `weights` float32 [B] (1 on valid rows), `task`,
  `valid` [B]."""
  batch = pack_prompts(sources, tasks, batch_size=batch_size, length=length, pad_id=pad_id,
                       padding_side="right")
  labels = np.zeros((batch_size,), np.int32)
  labels[:len(targets)] = [int(t[0]) for t in targets]
  return dict(batch, labels=labels, weights=batch["valid"].astype(np.float32))


@dataclasses.dataclass
class EvalBatch:
  """`arrays`: see `pack_prompts`; `references[i]` and `ids[i]` belong to row i (valid rows)."""
  arrays: dict[str, np.ndarray]
  references: list[tuple[str, ...]]
  ids: list[str]


def eval_batches(data: Encoded, *, batch_size: int, pad_id: int,
                 buckets: Sequence[int] | None = None, padding_side: str = "left",
                 process_index: int = 0, process_count: int = 1) -> Iterator[EvalBatch]:
  """Batches of prompts in data order; the last one is filled with invalid rows.

  With several hosts, global batch k has `batch_size * process_count` rows and host i gets rows
  [i * batch_size, (i + 1) * batch_size): every host yields the same number of batches with
  the same length S (the bucket of the longest prompt in the global batch).
  """
  n = len(data)
  global_b = batch_size * process_count
  lengths = np.array([len(s) for s in data.source], np.int64)
  buckets = tuple(buckets) if buckets else default_buckets(int(lengths.max(initial=1)))
  for start in range(0, n, global_b):
    glob = np.arange(start, min(start + global_b, n))
    s = bucket_length(int(lengths[glob].max()), buckets)
    local = glob[process_index * batch_size:(process_index + 1) * batch_size]
    arrays = pack_prompts([data.source[i] for i in local], [int(data.task[i]) for i in local],
                          batch_size=batch_size, length=s, pad_id=pad_id,
                          padding_side=padding_side)
    refs = [data.references[i] for i in local] if data.references is not None else []
    yield EvalBatch(arrays, refs, [data.ids[i] for i in local])
