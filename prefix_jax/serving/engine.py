"""Requests of any prefixes decoded together: validation, length buckets, one batched search.

A group of requests with the same search (greedy, or beam search of one width and length)
becomes one batch: sources left-padded to a length bucket, the batch padded to a size bucket,
`max_new_tokens` rounded up to a bucket for greedy search (its first n tokens do not depend on
how many follow), and each row's prefix gathered from the bank. So the compiled shapes stay
few: (batch bucket, source bucket, new-token bucket, bank length, beams).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from prefix_jax.data.encode import separator_ids
from prefix_jax.decode import DecodeConfig, generate
from prefix_jax.serving.bank import BankSnapshot, PrefixBank
from prefix_jax.serving.errors import ServingError


@dataclasses.dataclass(frozen=True)
class Limits:
  """Caps on what one request may ask (the model's positions are checked as well)."""
  max_tokens: int = 256
  max_beams: int = 8
  max_batch: int = 16
  max_prompt_tokens: int = 1024


@dataclasses.dataclass(frozen=True)
class Request:
  """One completion request: the prefix's name, the source's token ids (separator included)."""
  prefix: str
  ids: tuple[int, ...]
  max_tokens: int = 64
  num_beams: int = 1
  stop: tuple[str, ...] = ()
  ignore_eos: bool = False  # generate exactly max_tokens (vLLM's `ignore_eos`)

  @property
  def key(self) -> tuple[int, int, bool]:
    """Requests of one key decode together: (beams, max_new_tokens or its greedy bucket,
    ignore_eos)."""
    n = bucket(self.max_tokens, 16) if self.num_beams == 1 else self.max_tokens
    return self.num_beams, n, self.ignore_eos


@dataclasses.dataclass
class Completion:
  """text (cut at the first stop string), tokens generated (EOS excluded), why it ended
  ('stop': EOS or a stop string; 'length': max_tokens), and the batch it was decoded in."""
  text: str
  tokens: list[int]
  finish_reason: str
  batch_size: int
  batch_prefixes: int


def bucket(n: int, step: int) -> int:
  """n rounded up to a power of two below `step`, else to a multiple of `step`."""
  if n <= step:
    return 1 << max(0, (n - 1).bit_length())
  return -(-n // step) * step


class Engine:
  """The backbone, its tokenizer and a prefix bank; checks and decodes requests.

  eos_id: where generation stops (default: the tokenizer's end-of-sequence token).
  """

  def __init__(self, model, backbone: dict, tokenizer, bank: PrefixBank,
               limits: Limits = Limits(), eos_id: int | None = None):
    if not hasattr(model, "prefix_to_kv"):
      raise ValueError(f"serving needs a decoder-only backbone (gpt2, llama), got "
                       f"{model.cfg.arch}")
    self.model, self.backbone, self.tokenizer, self.bank = model, backbone, tokenizer, bank
    self.limits = limits
    self.eos_id = tokenizer.eos_id if eos_id is None else eos_id
    pad = getattr(tokenizer, "pad_id", None)
    self.pad_id = pad if pad is not None else (self.eos_id or 0)

  def encode(self, source: str) -> tuple[int, ...]:
    """A source's ids as in training: `encode(' ' + source)` then the separator."""
    return tuple(self.tokenizer.encode(" " + source)) + tuple(separator_ids(self.tokenizer))

  def check(self, request: Request, snapshot: BankSnapshot | None = None) -> None:
    """Raises a one-line ServingError (status and field) for a request that cannot run."""
    snapshot = snapshot or self.bank.snapshot()
    lim, positions = self.limits, self.model.cfg.max_positions
    if request.prefix not in snapshot.index:
      raise ServingError(f"unknown prefix '{request.prefix}' (loaded: "
                         f"{', '.join(snapshot.index) or 'none'})", status=404, param="model")
    if not 1 <= request.max_tokens <= lim.max_tokens:
      raise ServingError(f"max_tokens must be in [1, {lim.max_tokens}], got "
                         f"{request.max_tokens}", param="max_tokens")
    if not 1 <= request.num_beams <= lim.max_beams:
      raise ServingError(f"beam_size must be in [1, {lim.max_beams}], got "
                         f"{request.num_beams}", param="beam_size")
    if not request.ids or len(request.ids) > lim.max_prompt_tokens:
      raise ServingError(f"prompt must have 1 to {lim.max_prompt_tokens} tokens, got "
                         f"{len(request.ids)}", param="prompt")
    total = len(request.ids) + snapshot.length + request.max_tokens
    if total > positions:
      raise ServingError(
          f"prompt {len(request.ids)} tokens + prefix {snapshot.length} slots + max_tokens "
          f"{request.max_tokens} = {total} exceeds the model's {positions} positions",
          param="max_tokens")

  def shapes(self, requests: list[Request], snapshot: BankSnapshot) -> tuple[int, int, int]:
    """(batch, source length, new tokens) of the padded batch for one group of requests."""
    k, n_key, _ = requests[0].key
    src = max(len(r.ids) for r in requests)
    n = n_key if k == 1 else max(r.max_tokens for r in requests)
    s = bucket(src, 16)
    room = self.model.cfg.max_positions - snapshot.length
    if s + n > room:  # buckets must not push the batch past the model's positions
      n = max(max(r.max_tokens for r in requests), room - s)
      s = max(src, min(s, room - n))
    b = min(bucket(len(requests), self.limits.max_batch),
            max(self.limits.max_batch, len(requests)))
    return b, s, n

  def arrays(self, requests: list[Request], snapshot: BankSnapshot):
    """(inputs [B, S] left-padded, mask [B, S], prefix names [B], DecodeConfig) of one batch;
    rows past the requests are padding (one token, prefix of the first request)."""
    b, s, n = self.shapes(requests, snapshot)
    inputs = np.full((b, s), self.pad_id, np.int32)
    mask = np.zeros((b, s), bool)
    mask[len(requests):, -1] = True
    for row, r in enumerate(requests):
      inputs[row, s - len(r.ids):] = r.ids
      mask[row, s - len(r.ids):] = True
    names = [r.prefix for r in requests] + [requests[0].prefix] * (b - len(requests))
    config = DecodeConfig(max_new_tokens=n, num_beams=requests[0].num_beams,
                          eos_id=None if requests[0].ignore_eos else self.eos_id,
                          pad_id=self.pad_id)
    return inputs, mask, names, config

  def decode(self, requests: list[Request], snapshot: BankSnapshot | None = None
             ) -> list[Completion]:
    """Decodes requests of one `key` (at most `limits.max_batch`) as one batch."""
    snapshot = snapshot or self.bank.snapshot()
    inputs, mask, names, config = self.arrays(requests, snapshot)
    out = generate(self.model, self.backbone, inputs, mask, snapshot.rows(names), config=config)
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    distinct = len({r.prefix for r in requests})
    return [self._completion(r, tokens[row], int(lengths[row]), len(requests), distinct)
            for row, r in enumerate(requests)]

  def warm_up(self, source_len: int, max_tokens: int) -> int:
    """Compiles greedy batches of every batch-size bucket for sources of `source_len` tokens
    (and `max_tokens`), so that first requests do not wait for compilation (as servers
    capture their kernels at start-up). Returns the number of batch shapes compiled."""
    name = next(iter(self.bank.snapshot().index), None)
    if name is None:
      return 0
    sizes = sorted({min(1 << i, self.limits.max_batch)
                    for i in range(self.limits.max_batch.bit_length() + 1)})
    for b in sizes:
      self.decode([Request(name, (self.pad_id,) * source_len, max_tokens)] * b)
    return len(sizes)

  def _completion(self, request: Request, tokens: np.ndarray, length: int, size: int,
                  distinct: int) -> Completion:
    ended = length < request.max_tokens  # EOS within the request's own budget
    ids = tokens[:min(length, request.max_tokens)].tolist()
    text = self.tokenizer.decode(ids)
    cut = min((i for i in (text.find(s) for s in request.stop if s) if i >= 0), default=-1)
    if cut >= 0:
      text, ended = text[:cut], True
    return Completion(text, ids, "stop" if ended else "length", size, distinct)


def group(requests: list[Request], max_batch: int) -> list[list[int]]:
  """Indices of `requests` split into batches: same key, at most `max_batch`, and similar
  source lengths together (sorted by length within a key)."""
  by_key: dict[tuple, list[int]] = {}
  for i, r in enumerate(requests):
    by_key.setdefault(r.key, []).append(i)
  batches = []
  for idx in by_key.values():
    idx.sort(key=lambda i: len(requests[i].ids))
    batches += [idx[j:j + max_batch] for j in range(0, len(idx), max_batch)]
  return batches
