"""Batched generation over a dataset, predictions written one line per example."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Iterable

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from prefix_jax.decode.cache import prefix_kv
from prefix_jax.decode.config import DecodeConfig
from prefix_jax.decode.search import generate
from prefix_jax.models.deltas import Delta
from prefix_jax.prefixes.types import Prefix


def progress_enabled() -> bool:
  """Progress bars only on a terminal, and never under CI."""
  return sys.stderr.isatty() and not os.environ.get("CI")


def write_lines_atomic(path, lines: list[str]) -> None:
  """Writes `lines` to `path` via a temporary file in the same folder and a rename, so a
  reader never sees a half-written file."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  try:
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(line + "\n" for line in lines)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


@functools.lru_cache(maxsize=8)  # one entry per tokenizer in use: it decodes the vocabulary
def newline_ids(tokenizer, vocab_size: int) -> tuple[int, ...]:
  """Ids whose text holds a line break: the paper's `banned_ids` for one-line outputs."""
  return tuple(i for i in range(vocab_size) if {"\n", "\r"} & set(tokenizer.decode([i])))


def _one_line(text: str) -> str:
  # A prediction must stay on its own line even if a banned-newline list missed a token.
  return " ".join(text.splitlines()).strip()


def generate_dataset(model, backbone: dict, prefix: Prefix | None, batches: Iterable[dict],
                     tokenizer, *, out_path, config: DecodeConfig,
                     infix: bool = False, delta: Delta | None = None) -> list[str]:
  """Decodes every valid row of `batches` and writes the predictions to `out_path`.

  Args:
    batches: dicts with `inputs` [B, S] (left-padded), `mask` [B, S] bool, `valid` [B] bool
      (False on padding rows) and, with a prefix bank, `task` [B] int.
    prefix: a shared `Prefix`, a bank (leading task axis; batches then carry `task`), or None.
      A hidden prefix is converted to keys/values once here.
    tokenizer: anything with `decode(ids) -> str`.
    infix: the prefix is an infix (placed after each prompt, see `greedy_search`).
    delta: a method's added parameters (`models.deltas.Delta`) or None, as `greedy_search`.
  Returns:
    The predictions of valid rows, in order (also the lines of `out_path`; newlines inside a
    prediction become spaces).
  Each distinct [B, S] compiles once: bucket source lengths upstream. A batch smaller than
  the first is padded with invalid rows to the first's size.
  """
  # A hidden infix keeps its form: its keys depend on where it sits (RoPE). With a delta the
  # model converts it itself (prefix_kv runs the plain projections).
  if isinstance(prefix, Prefix) and prefix.form == "hidden" and not infix and delta is None:
    prefix = prefix_kv(model, backbone, prefix)
  bank = isinstance(prefix, Prefix) and prefix.batched
  total = len(batches) if hasattr(batches, "__len__") else None
  predictions = []
  width = None  # pad short (last) batches to the first batch size: no recompilation
  for batch in tqdm(batches, total=total, desc="decode", disable=not progress_enabled()):
    inputs, mask = np.asarray(batch["inputs"]), np.asarray(batch["mask"], bool)
    valid = np.asarray(batch.get("valid", np.ones(len(inputs), bool)), bool)
    task = batch.get("task")
    if (task is not None) != bank:
      raise ValueError(f"batches must carry 'task' exactly when the prefix is a bank (bank: "
                       f"{bank}, 'task' given: {task is not None})")
    b = len(inputs)
    width = width or b
    if b < width:
      pad = width - b
      inputs = np.concatenate([inputs, np.zeros((pad, inputs.shape[1]), inputs.dtype)])
      mask = np.concatenate([mask, np.zeros((pad, mask.shape[1]), bool)])
      valid = np.concatenate([valid, np.zeros(pad, bool)])
      task = None if task is None else np.concatenate([np.asarray(task), np.zeros(pad, int)])
    row_prefix = prefix
    if task is not None:
      row_prefix = prefix.gather(jnp.asarray(np.where(valid, task, 0), jnp.int32))
    out = generate(model, backbone, inputs, mask, row_prefix, config=config, infix=infix,
                   delta=delta)
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    for row in np.flatnonzero(valid):
      predictions.append(_one_line(tokenizer.decode(tokens[row, :lengths[row]].tolist())))
  write_lines_atomic(out_path, predictions)
  return predictions
