"""Helpers of the LLaMA loaders (llama2.c, GGUF): the RoPE row permutation, tree set / cast.

Our tree (kernel = HF `weight.T`, numpy arrays):
  embed/embedding [V, H]; layers_{i}/attn_norm/scale [H];
  layers_{i}/attn/{q_proj [H, Hq*D], k_proj [H, Hkv*D], v_proj [H, Hkv*D], o_proj [Hq*D, H]}/kernel;
  layers_{i}/mlp_norm/scale [H]; layers_{i}/mlp/{gate_proj, up_proj [H, I], down_proj [I, H]}/kernel;
  final_norm/scale [H]; lm_head/kernel [H, V] (absent with tied embeddings).
The shapes the loaders check against come from the model itself (`weights.shapes`).
"""
from __future__ import annotations

import numpy as np


def interleaved_to_half(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Reorders the output rows of a Q or K weight [n_heads*D, in] from the interleaved RoPE
  layout (Meta / llama2.c / llama.cpp GGUF: pairs (2j, 2j+1) rotate together) to HF's
  rotate-half layout (pairs (j, j + D/2)). The inverse of llama.cpp's `permute`, and what HF's
  `convert_llama_weights_to_hf.permute` does."""
  rows = w.shape[0]
  if rows % (2 * n_heads):
    raise ValueError(f"{rows} rows do not split into {n_heads} heads of even size")
  d = rows // n_heads
  return np.ascontiguousarray(
      w.reshape(n_heads, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def half_to_interleaved(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Inverse of `interleaved_to_half` (HF layout -> Meta/GGUF layout)."""
  rows = w.shape[0]
  d = rows // n_heads
  return np.ascontiguousarray(
      w.reshape(n_heads, 2, d // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def set_path(tree: dict, path: tuple[str, ...], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def cast_tree(tree: dict, dtype: str) -> dict:
  """Casts every array to `dtype` ('float32' or 'bfloat16')."""
  np_dtype = numpy_dtype(dtype)
  return {k: cast_tree(v, dtype) if isinstance(v, dict) else np.asarray(v, np_dtype)
          for k, v in tree.items()}


def numpy_dtype(dtype) -> np.dtype:
  """'float32' / 'bfloat16' (or the numpy / jax dtype objects) as a numpy dtype."""
  import ml_dtypes  # registers bfloat16 with numpy; a dependency of jax
  try:
    d = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
  except TypeError:
    d = None
  if d is None or d.name not in ("float32", "bfloat16"):
    raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
  return d
