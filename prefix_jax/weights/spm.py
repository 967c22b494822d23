"""SentencePiece-style BPE over a scored vocabulary (llama2.c `tokenizer.bin`, GGUF 'llama').

Encoding follows llama2.c's run.c `encode`: a dummy-prefix " " token, one token per UTF-8
code point (unknown code points fall back to their `<0xXX>` byte tokens), then repeatedly merge
the adjacent pair whose concatenation is the vocabulary piece with the highest score (the
leftmost such pair on ties). Decoding follows run.c's `decode`: a piece right after BOS (or at
the very start) loses its leading space, `<0xXX>` pieces are raw bytes. Unlike run.c, which only
prints printable bytes, every byte is kept so that `decode(encode(s)) == s`.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Iterable, Sequence

from prefix_jax.weights.errors import MissingFileError, WeightsError
from prefix_jax.weights.tokenizer import Tokenizer

_BYTE_PIECE = re.compile(rb"^<0x([0-9A-Fa-f]{2})>$")


def sentencepiece_tokenizer(pieces: Sequence[bytes], scores: Sequence[float],
                            bos_id: int | None = 1, eos_id: int | None = 2,
                            pad_id: int | None = None, add_bos: bool = True,
                            add_dummy_prefix: bool = True, control_ids: Iterable[int] = ()
                            ) -> Tokenizer:
  """A `Tokenizer` over a `SentencePieceBPE` backend (`encode(text)` adds BOS if `add_bos`)."""
  backend = SentencePieceBPE(pieces, scores, bos_id, (eos_id, pad_id, *control_ids),
                             add_dummy_prefix)
  return Tokenizer(backend, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id, add_bos=add_bos)


class SentencePieceBPE:
  """The text work of a SentencePiece vocabulary (a `Tokenizer` backend).

  Args:
    pieces: [V] byte strings, a space where SentencePiece writes '▁'.
    scores: [V] merge scores (higher merges first).
    bos_id: a piece right after it loses its leading space in `decode`; never emitted.
    control_ids: ids never emitted by `decode` (EOS, pad, control tokens).
  """

  def __init__(self, pieces: Sequence[bytes], scores: Sequence[float], bos_id: int | None,
               control_ids: Iterable[int | None] = (), add_dummy_prefix: bool = True):
    if len(pieces) != len(scores):
      raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
    self.pieces = list(pieces)
    self.scores = [float(s) for s in scores]
    self.bos_id, self.add_dummy_prefix = bos_id, add_dummy_prefix
    self._ids: dict[bytes, int] = {}
    for i, p in enumerate(self.pieces):
      self._ids.setdefault(p, i)  # first match, as run.c's linear str_lookup
    self._byte_ids = {}
    self._byte_of = {}
    for i, p in enumerate(self.pieces):
      m = _BYTE_PIECE.match(p)
      if m:
        self._byte_ids.setdefault(int(m.group(1), 16), i)
        self._byte_of[i] = int(m.group(1), 16)
    self._skip = {i for i in (bos_id, *control_ids) if i is not None}

  @property
  def vocab_size(self) -> int:
    return len(self.pieces)

  def token_to_id(self, token: str) -> int | None:
    return self._ids.get(token.replace("\u2581", " ").encode("utf-8"))

  def encode(self, text: str) -> list[int]:
    ids = []
    if text and self.add_dummy_prefix and b" " in self._ids:
      ids.append(self._ids[b" "])
    for ch in text:
      b = ch.encode("utf-8")
      if b in self._ids:
        ids.append(self._ids[b])
        continue
      for byte in b:
        if byte not in self._byte_ids:
          raise ValueError(f"character {ch!r} is not in the vocabulary and there is no "
                           f"<0x{byte:02X}> byte token")
        ids.append(self._byte_ids[byte])
    return self._merge(ids)

  def _merge(self, ids: list[int]) -> list[int]:
    pieces, lookup, scores = self.pieces, self._ids, self.scores

    def pair(i):  # the id that merges ids[i], ids[i + 1], or -1
      return lookup.get(pieces[ids[i]] + pieces[ids[i + 1]], -1)

    # merged[i] is kept in step with ids so each merge only looks up its two new pairs.
    merged = [pair(i) for i in range(len(ids) - 1)]
    while merged:
      best_i, best = -1, None
      for i, j in enumerate(merged):
        if j >= 0 and (best is None or scores[j] > best):  # strict: leftmost wins ties
          best_i, best = i, scores[j]
      if best_i < 0:
        break
      ids[best_i:best_i + 2] = [merged[best_i]]
      del merged[best_i]
      if best_i < len(merged):
        merged[best_i] = pair(best_i)
      if best_i > 0:
        merged[best_i - 1] = pair(best_i - 1)
    return ids

  def piece_bytes(self, prev: int | None, token: int) -> bytes:
    """The bytes run.c prints for `token` following `prev` (None: start of text)."""
    if token in self._byte_of:
      return bytes([self._byte_of[token]])
    piece = self.pieces[token]
    if (prev is None or prev == self.bos_id) and piece.startswith(b" "):
      piece = piece[1:]
    return piece

  def decode(self, ids: Iterable[int]) -> str:
    out, prev = bytearray(), None
    for t in ids:
      t = int(t)
      if not 0 <= t < len(self.pieces):
        raise ValueError(f"token id {t} out of range [0, {len(self.pieces)})")
      if t not in self._skip:
        out += self.piece_bytes(prev, t)
      prev = t
    return out.decode("utf-8", errors="replace")


def read_llama2c_tokenizer(path, vocab_size: int | None = None) -> Tokenizer:
  """llama2.c `tokenizer.bin`: int32 max_token_length, then per token float32 score, int32
  length, bytes. `vocab_size` (the model's) must match the number of tokens when given."""
  path = Path(path)
  if not path.is_file():
    raise MissingFileError(f"{path}: llama2.c tokenizer not found")
  data = path.read_bytes()
  if len(data) < 4:
    raise WeightsError(f"{path}: truncated llama2.c tokenizer ({len(data)} bytes)")
  (max_len,) = struct.unpack_from("<i", data, 0)
  if not 0 < max_len < 1 << 16:
    raise WeightsError(f"{path}: not a llama2.c tokenizer (max_token_length={max_len})")
  pieces, scores, off = [], [], 4
  while off < len(data):
    if off + 8 > len(data):
      raise WeightsError(f"{path}: truncated llama2.c tokenizer at token {len(pieces)}")
    score, n = struct.unpack_from("<fi", data, off)
    off += 8
    if not 0 <= n <= max_len or off + n > len(data):
      raise WeightsError(f"{path}: truncated or corrupt llama2.c tokenizer at token "
                         f"{len(pieces)} (length {n}, max_token_length {max_len})")
    pieces.append(data[off:off + n])
    scores.append(score)
    off += n
  if vocab_size is not None and len(pieces) != vocab_size:
    raise WeightsError(f"{path}: tokenizer has {len(pieces)} tokens but the model's "
                       f"vocab_size is {vocab_size}")
  return sentencepiece_tokenizer(pieces, scores, bos_id=1, eos_id=2, pad_id=None)
