"""GGUF files (llama.cpp) -> our LLaMA tree, dequantized with the `gguf` package.

GGUF stores a matrix of ne = [in, out] as a numpy array [out, in] (torch layout), so a kernel
is its transpose. llama.cpp's converter permuted the Q/K rows of HF checkpoints to the
interleaved RoPE layout; we undo that (`interleaved_to_half`) to get HF's rotate-half layout.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from prefix_jax.models.config import ModelConfig
from prefix_jax.weights import llama_params as lp, shapes
from prefix_jax.weights.errors import MissingFileError, WeightsError, one_line

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHS = ("llama",)
_MISSING = object()

# GGUF tensor name (after 'blk.{l}.' for per-layer ones) -> (our path, is kernel, RoPE heads key)
_GLOBAL = {"token_embd.weight": (("embed", "embedding"), False, None),
           "output_norm.weight": (("final_norm", "scale"), False, None),
           "output.weight": (("lm_head", "kernel"), True, None)}
_LAYER = {"attn_norm.weight": (("attn_norm", "scale"), False, None),
          "attn_q.weight": (("attn", "q_proj", "kernel"), True, "q"),
          "attn_k.weight": (("attn", "k_proj", "kernel"), True, "k"),
          "attn_v.weight": (("attn", "v_proj", "kernel"), True, None),
          "attn_output.weight": (("attn", "o_proj", "kernel"), True, None),
          "ffn_norm.weight": (("mlp_norm", "scale"), False, None),
          "ffn_gate.weight": (("mlp", "gate_proj", "kernel"), True, None),
          "ffn_up.weight": (("mlp", "up_proj", "kernel"), True, None),
          "ffn_down.weight": (("mlp", "down_proj", "kernel"), True, None)}
_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")


def is_gguf(path) -> bool:
  with open(path, "rb") as f:
    return f.read(4) == GGUF_MAGIC


def open_gguf(path):
  """A `gguf.GGUFReader` whose every tensor lies inside the file; WeightsError otherwise."""
  import gguf
  path = Path(path)
  if not path.is_file():
    raise MissingFileError(f"{path}: GGUF file not found")
  if not is_gguf(path):
    raise WeightsError(f"{path}: not a GGUF file (no 'GGUF' magic)")
  try:
    reader = gguf.GGUFReader(path)
  except Exception as e:  # the reader raises ValueError / struct.error / IndexError when cut short
    raise WeightsError(f"{path}: cannot read GGUF, truncated or corrupt "
                       f"({type(e).__name__}: {one_line(e)})") from None
  size = path.stat().st_size
  for t in reader.tensors:
    if t.data_offset + t.n_bytes > size or t.data.size * t.data.itemsize != t.n_bytes:
      raise WeightsError(f"{path}: tensor {t.name} ends at byte {t.data_offset + t.n_bytes} but "
                         f"the file has {size} bytes (truncated)")
  return reader


def field(reader, key: str, default=_MISSING):
  """A metadata value (str, int, float, bool or list); `default` if absent."""
  f = reader.fields.get(key)
  if f is None:
    if default is _MISSING:
      raise WeightsError(f"{reader.data.filename}: metadata key '{key}' missing")
    return default
  return f.contents()


def config_from_gguf(reader, path) -> ModelConfig:
  arch = field(reader, "general.architecture", "<missing>")
  if arch not in SUPPORTED_ARCHS:
    raise WeightsError(f"{path}: unknown architecture general.architecture='{arch}' "
                       f"(supported: {', '.join(SUPPORTED_ARCHS)})")
  g = lambda key, default=_MISSING: field(reader, f"{arch}.{key}", default)
  names = {t.name for t in reader.tensors}
  heads = int(g("attention.head_count"))
  hidden = int(g("embedding_length"))
  head_dim = int(g("attention.key_length", hidden // max(heads, 1)))
  rope_dims = int(g("rope.dimension_count", head_dim))
  if rope_dims != head_dim:
    raise WeightsError(f"{path}: partial rotary ({arch}.rope.dimension_count={rope_dims}, "
                       f"head_dim={head_dim}) is not supported")
  scaling = g("rope.scaling.type", "none")
  if scaling not in ("none", "") or "rope_freqs.weight" in names:
    raise WeightsError(f"{path}: RoPE scaling ('{scaling}', rope_freqs) is not supported")
  tokens = field(reader, "tokenizer.ggml.tokens", None)
  vocab = int(g("vocab_size", len(tokens) if tokens is not None else 0))
  try:
    return ModelConfig(
        arch="llama", vocab_size=vocab, hidden_size=hidden, num_layers=int(g("block_count")),
        num_heads=heads, num_kv_heads=int(g("attention.head_count_kv", heads)), head_dim=head_dim,
        intermediate_size=int(g("feed_forward_length")), max_positions=int(g("context_length")),
        rope_theta=_f32_decimal(g("rope.freq_base", 10000.0)),
        norm_eps=_f32_decimal(g("attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings="output.weight" not in names,
        bos_token_id=field(reader, "tokenizer.ggml.bos_token_id", None),
        eos_token_id=field(reader, "tokenizer.ggml.eos_token_id", None),
        pad_token_id=field(reader, "tokenizer.ggml.padding_token_id", None),
        extra={"gguf_name": field(reader, "general.name", "")})
  except (ValueError, ZeroDivisionError) as e:
    raise WeightsError(f"{path}: bad {arch}.* metadata ({one_line(e)})") from None


def _f32_decimal(x) -> float:
  """A float32 metadata value as the shortest decimal that rounds to it (1e-5, not 9.99e-6)."""
  return float(str(np.float32(x)))


def dequantize(t, path) -> np.ndarray:
  """A GGUF tensor as float32 numpy, shape reversed(ne) (= [out, in] for matrices)."""
  from gguf import quants
  try:
    x = quants.dequantize(t.data, t.tensor_type)
  except NotImplementedError:
    raise WeightsError(f"{path}: tensor {t.name} has type {t.tensor_type.name}, which gguf "
                       "cannot dequantize") from None
  shape = tuple(int(n) for n in reversed(t.shape))
  return np.asarray(x, np.float32).reshape(shape)


def _target(name: str, cfg: ModelConfig, path):
  """(our path, is kernel, RoPE head count or None) of a GGUF tensor name."""
  if name in _GLOBAL:
    dst, is_kernel, _ = _GLOBAL[name]
    return dst, is_kernel, None
  m = _BLOCK.match(name)
  if m and m.group(2) in _LAYER:
    layer = int(m.group(1))
    if layer >= cfg.num_layers:
      raise WeightsError(f"{path}: has tensor {name} but {cfg.arch}.block_count is "
                         f"{cfg.num_layers}")
    dst, is_kernel, rope = _LAYER[m.group(2)]
    heads = {"q": cfg.num_heads, "k": cfg.num_kv_heads, None: None}[rope]
    return (f"layers_{layer}", *dst), is_kernel, heads
  raise WeightsError(f"{path}: unexpected tensor '{name}' for a llama model")


def load_gguf(path, dtype="float32", reader=None) -> tuple[ModelConfig, dict]:
  """`(ModelConfig, params)` from a llama GGUF file, every tensor dequantized to `dtype`."""
  path = Path(path)
  reader = reader if reader is not None else open_gguf(path)
  cfg = config_from_gguf(reader, path)
  out_dtype = lp.numpy_dtype(dtype)
  expected = shapes.expected_shapes(cfg)
  params: dict = {}
  for t in reader.tensors:
    dst, is_kernel, rope_heads = _target(t.name, cfg, path)
    want = expected.get("/".join(dst))
    if want is None:
      raise WeightsError(f"{path}: unexpected tensor '{t.name}' for this config")
    stored = tuple(int(n) for n in reversed(t.shape))
    if (stored[::-1] if is_kernel else stored) != tuple(want):
      raise WeightsError(f"{path}: tensor {t.name} has shape {stored}, config "
                         f"(hidden_size={cfg.hidden_size}, heads={cfg.num_heads}/"
                         f"{cfg.num_kv_heads}) expects {tuple(want)[::-1] if is_kernel else want}")
    x = dequantize(t, path)
    if rope_heads is not None:
      x = lp.interleaved_to_half(x, rope_heads)
    if is_kernel:
      x = x.T
    lp.set_path(params, dst, np.ascontiguousarray(x, dtype=out_dtype))
  shapes.check_params(params, cfg, path)
  return cfg, params
