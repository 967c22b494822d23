"""The tokenizer interface the data pipeline needs, and an adapter for `tokenizers.Tokenizer`.

Any object with `encode(str) -> list[int]`, `decode(list[int]) -> str` and integer attributes
`eos_id`, `pad_id` (and optionally `bos_id`) works; `encode_batch` is used when present.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import tokenizers


class Tokenizer(Protocol):
  eos_id: int
  pad_id: int

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...


class HFTokenizer:
  """Wraps a `tokenizers.Tokenizer` (e.g. GPT-2 byte-level BPE from a `tokenizer.json`).

  No special tokens are added by `encode`; the pipeline places BOS/separator/EOS ids itself.
  `pad_id` defaults to `eos_id` (GPT-2 has no pad token; padded positions are masked anyway).
  """

  def __init__(self, tokenizer: tokenizers.Tokenizer, *, eos_token: str = "<|endoftext|>",
               bos_token: str | None = None, pad_token: str | None = None):
    self._tok = tokenizer
    self.eos_id = self._id(eos_token)
    self.bos_id = self._id(bos_token) if bos_token else None
    self.pad_id = self._id(pad_token) if pad_token else self.eos_id

  @classmethod
  def from_file(cls, path, **kwargs) -> "HFTokenizer":
    return cls(tokenizers.Tokenizer.from_file(str(path)), **kwargs)

  def _id(self, token: str) -> int:
    idx = self._tok.token_to_id(token)
    if idx is None:
      raise ValueError(f"token {token!r} is not in the tokenizer's vocabulary")
    return idx

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size()

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

  def decode(self, ids: Sequence[int]) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)
