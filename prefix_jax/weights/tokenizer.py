"""The one tokenizer type of the package: `Tokenizer`, text <-> ids over a backend.

Every loader returns a `Tokenizer` (`weights.load_pretrained`, `gpt2_tokenizer`); the data
pipeline, prefix initialisation, decoding and serving use it. Interface: `encode(text, bos=None,
eos=False) -> list[int]`, `encode_batch(texts)`, `decode(ids) -> str`, `vocab_size`,
`token_to_id(token)`, and `bos_id` / `eos_id` / `pad_id` (int or None).

A backend does the text work (`encode(text)`, `decode(ids)`, `vocab_size`, `token_to_id`, and
optionally `encode_batch(texts)`); the `Tokenizer` adds BOS/EOS on request:
  * `HFBackend`: a HF `tokenizers.Tokenizer` (GPT-2 BPE, BERT WordPiece, a GGUF byte-level BPE),
    built by `Tokenizer.from_file` (a `tokenizer.json`) and `gguf_tokenizer`;
  * `spm.SentencePieceBPE`: a scored SentencePiece vocabulary (llama2.c, GGUF 'llama'), built
    by `spm.sentencepiece_tokenizer`;
  * `MissingTokenizer(message)` stands in for the tokenizer a model folder lacks.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable, Sequence

import tokenizers

from prefix_jax import paths
from prefix_jax.weights.errors import MissingFileError, WeightsError, one_line

# Names of special tokens, most specific first, used when no special_tokens_map.json says.
_BOS_NAMES = ("<|begin_of_text|>", "<s>", "<|endoftext|>", "[CLS]", "<bos>")
_EOS_NAMES = ("<|end_of_text|>", "</s>", "<|endoftext|>", "[SEP]", "<eos>")
_PAD_NAMES = ("<pad>", "[PAD]", "<|pad|>")


class Tokenizer:
  """Text <-> ids: `backend` does the text work; `add_bos` is what `encode(text)` does when
  `bos` is not given."""

  def __init__(self, backend, bos_id: int | None = None, eos_id: int | None = None,
               pad_id: int | None = None, add_bos: bool = False):
    self.backend = backend
    self.bos_id, self.eos_id, self.pad_id, self.add_bos = bos_id, eos_id, pad_id, add_bos

  @classmethod
  def from_file(cls, path, bos_id: int | None = None, eos_id: int | None = None,
                pad_id: int | None = None) -> "Tokenizer":
    """Reads a `tokenizer.json`. Special ids not given are taken from a
    `special_tokens_map.json` beside it, else from well-known special token names.

    A file read before in this process, unchanged since, gives the same `Tokenizer` again:
    a process that runs many short runs (an inline sweep, the paper's tables) parses it once.
    """
    path = Path(path)
    if not path.is_file():
      raise MissingFileError(f"{path}: tokenizer file not found")
    file_key = (path.resolve(), _stamp(path), _stamp(path.parent / "special_tokens_map.json"))
    return cls._read(path, file_key, bos_id, eos_id, pad_id)

  @classmethod
  @functools.lru_cache(maxsize=8)  # a few: one per model in use
  def _read(cls, path: Path, file_key: tuple, bos_id, eos_id, pad_id) -> "Tokenizer":
    """`path` as given (it names the file in errors); `file_key` (resolved path, stamps of
    the file and its special-token map) makes a changed or another file a new entry."""
    del file_key
    try:
      hf_tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
      raise WeightsError(f"{path}: cannot read tokenizer ({one_line(e)})") from None
    found = _special_ids(hf_tok, path.parent / "special_tokens_map.json")
    return cls(HFBackend(hf_tok), bos_id if bos_id is not None else found["bos"],
               eos_id if eos_id is not None else found["eos"],
               pad_id if pad_id is not None else found["pad"])

  def encode(self, text: str, bos: bool | None = None, eos: bool = False) -> list[int]:
    """Token ids of `text`: BOS in front if `bos` (default `self.add_bos`), EOS after if `eos`."""
    return self._add_specials(self.backend.encode(text), bos, eos)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """`[encode(t) for t in texts]`, in one call where the backend can batch."""
    batch = getattr(self.backend, "encode_batch", None)
    rows = batch(list(texts)) if batch else [self.backend.encode(t) for t in texts]
    return [self._add_specials(ids, None, False) for ids in rows]

  def _add_specials(self, ids: list[int], bos: bool | None, eos: bool) -> list[int]:
    if self.add_bos if bos is None else bos:
      if self.bos_id is None:
        raise ValueError("this tokenizer has no BOS token")
      ids = [self.bos_id] + ids
    if eos:
      if self.eos_id is None:
        raise ValueError("this tokenizer has no EOS token")
      ids = ids + [self.eos_id]
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids`; special tokens (BOS, EOS, pad, control) are left out."""
    return self.backend.decode(ids)

  @property
  def vocab_size(self) -> int:
    return self.backend.vocab_size

  def token_to_id(self, token: str) -> int | None:
    return self.backend.token_to_id(token)


class HFBackend:
  """A HF `tokenizers.Tokenizer` with padding and truncation turned off. `encode` runs the
  tokenizer's own post-processor (BERT gets `[CLS] ... [SEP]`, GPT-2 nothing); `decode` skips
  special tokens."""

  def __init__(self, hf_tokenizer: tokenizers.Tokenizer):
    hf_tokenizer.no_padding()
    hf_tokenizer.no_truncation()
    self.hf = hf_tokenizer

  def encode(self, text: str) -> list[int]:
    return list(self.hf.encode(text).ids)

  def encode_batch(self, texts: list[str]) -> list[list[int]]:
    return [list(e.ids) for e in self.hf.encode_batch(texts)]

  def decode(self, ids: Iterable[int]) -> str:
    return self.hf.decode([int(i) for i in ids], skip_special_tokens=True)

  @property
  def vocab_size(self) -> int:
    return self.hf.get_vocab_size(with_added_tokens=True)

  def token_to_id(self, token: str) -> int | None:
    return self.hf.token_to_id(token)


class MissingTokenizer(Tokenizer):
  """Stands in for a tokenizer a model folder lacks: the weights load, and the first use
  (encode, decode, vocab_size or a special id) raises `MissingFileError` naming what is missing."""

  def __init__(self, message: str):  # no backend, no ids: every use raises
    self._message = message

  def _missing(self, *args, **kwargs):
    raise MissingFileError(self._message)

  encode = encode_batch = decode = token_to_id = _missing
  vocab_size = bos_id = eos_id = pad_id = add_bos = backend = property(_missing)

  def __bool__(self) -> bool:  # `if tokenizer:` reads as "no tokenizer"
    return False


def _stamp(path: Path) -> tuple[int, int] | None:
  """(modification time, size) of a file, None where there is none: a changed file reads anew."""
  try:
    st = path.stat()
  except FileNotFoundError:
    return None
  return st.st_mtime_ns, st.st_size


def _special_ids(hf_tok, map_file: Path) -> dict[str, int | None]:
  """bos/eos/pad ids from a special_tokens_map.json (BERT: cls/sep/pad) or known names."""
  names: dict[str, list[str]] = {"bos": list(_BOS_NAMES), "eos": list(_EOS_NAMES),
                                 "pad": list(_PAD_NAMES)}
  if map_file.is_file():
    try:
      smap = json.loads(map_file.read_text())
    except json.JSONDecodeError as e:
      raise WeightsError(f"{map_file}: invalid JSON ({e})") from None
    def content(key):
      v = smap.get(key)
      return v.get("content") if isinstance(v, dict) else v
    for role, keys in (("bos", ("bos_token", "cls_token")), ("eos", ("eos_token", "sep_token")),
                       ("pad", ("pad_token",))):
      explicit = [content(k) for k in keys if content(k)]
      if explicit:
        names[role] = explicit
  out = {}
  for role, candidates in names.items():
    ids = [hf_tok.token_to_id(n) for n in candidates]
    out[role] = next((i for i in ids if i is not None), None)
  return out


def gpt2_tokenizer(path=None) -> Tokenizer:
  """GPT-2's byte-level BPE (`<|endoftext|>` = 50256 is both BOS and EOS; no pad token)."""
  if path is None:
    path = paths.shared_path("models", "gpt2-tokenizer", "tokenizer.json")
  return Tokenizer.from_file(path)
