"""The tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.

'gpt2' (byte-level BPE: tokens + merges) becomes a HF `tokenizers.Tokenizer` (ByteLevel
pre-tokenizer and decoder as GPT-2, plus whatever splitting `tokenizer.ggml.pre` names);
'llama' (SentencePiece: tokens + scores) a `SentencePieceBPE`; either is a `Tokenizer`'s backend.
"""
from __future__ import annotations

from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers

from prefix_jax.weights.errors import WeightsError
from prefix_jax.weights.gguf_llama import field
from prefix_jax.weights.spm import sentencepiece_tokenizer
from prefix_jax.weights.tokenizer import HFBackend, Tokenizer

# llama.cpp token types
_CONTROL, _USER_DEFINED = 3, 4
# Llama 3's split regex ('llama-bpe' in llama.cpp), as in its HF tokenizer.json.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def tokenizer_from_gguf(reader, path) -> Tokenizer:
  path = Path(path)
  model = field(reader, "tokenizer.ggml.model", None)
  if model is None:
    raise WeightsError(f"{path}: no tokenizer inside (metadata tokenizer.ggml.model missing)")
  tokens = field(reader, "tokenizer.ggml.tokens", None)
  if not tokens:
    raise WeightsError(f"{path}: tokenizer.ggml.tokens missing or empty")
  types = field(reader, "tokenizer.ggml.token_type", None) or [1] * len(tokens)
  ids = {role: field(reader, f"tokenizer.ggml.{role}_token_id", None)
         for role in ("bos", "eos", "padding")}
  if model == "gpt2":
    return _byte_level_bpe(reader, path, tokens, types, ids)
  if model == "llama":
    scores = field(reader, "tokenizer.ggml.scores", None) or [0.0] * len(tokens)
    return sentencepiece_tokenizer(
        [t.replace("\u2581", " ").encode("utf-8") for t in tokens], scores,
        bos_id=ids["bos"], eos_id=ids["eos"], pad_id=ids["padding"],
        add_bos=bool(field(reader, "tokenizer.ggml.add_bos_token", True)),
        add_dummy_prefix=bool(field(reader, "tokenizer.ggml.add_space_prefix", True)),
        control_ids=[i for i, t in enumerate(types) if t == _CONTROL])
  raise WeightsError(f"{path}: tokenizer model '{model}' is not supported (gpt2, llama)")


def _byte_level_bpe(reader, path, tokens, types, ids) -> Tokenizer:
  merges = field(reader, "tokenizer.ggml.merges", None)
  if merges is None:
    raise WeightsError(f"{path}: byte-level BPE tokenizer without tokenizer.ggml.merges")
  vocab = {t: i for i, t in enumerate(tokens)}
  if len(vocab) != len(tokens):
    raise WeightsError(f"{path}: tokenizer.ggml.tokens has duplicate entries")
  try:
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    hf_tok = tokenizers.Tokenizer(models.BPE(vocab, pairs, fuse_unk=False))
  except Exception as e:
    raise WeightsError(f"{path}: bad BPE merges ({type(e).__name__}: {e})") from None
  pre = field(reader, "tokenizer.ggml.pre", "default")
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  if pre in ("default", "gpt-2", "gpt2"):
    hf_tok.pre_tokenizer = byte_level
  elif pre in ("smollm", "starcoder", "refact"):  # digits split one by one, then GPT-2's regex
    hf_tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level])
  elif pre in ("llama-bpe", "llama3"):
    hf_tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  else:
    raise WeightsError(f"{path}: pre-tokenizer tokenizer.ggml.pre='{pre}' is not supported")
  hf_tok.decoder = decoders.ByteLevel()
  special = [AddedToken(t, special=True, normalized=False)
             for t, ty in zip(tokens, types) if ty in (_CONTROL, _USER_DEFINED)]
  hf_tok.add_special_tokens(special)
  return Tokenizer(HFBackend(hf_tok), bos_id=ids["bos"], eos_id=ids["eos"], pad_id=ids["padding"],
                   add_bos=bool(field(reader, "tokenizer.ggml.add_bos_token", False)))
