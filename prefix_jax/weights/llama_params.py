"""Our LLaMA parameter tree: expected shapes, checks, and the RoPE row permutation.

Tree (kernel = HF `weight.T`, numpy arrays):
  embed/embedding [V, H]; layers_{i}/attn_norm/scale [H];
  layers_{i}/attn/{q_proj [H, Hq*D], k_proj [H, Hkv*D], v_proj [H, Hkv*D], o_proj [Hq*D, H]}/kernel;
  layers_{i}/mlp_norm/scale [H]; layers_{i}/mlp/{gate_proj, up_proj [H, I], down_proj [I, H]}/kernel;
  final_norm/scale [H]; lm_head/kernel [H, V] (absent with tied embeddings).
"""
from __future__ import annotations

import numpy as np

from prefix_jax.models.config import ModelConfig
from prefix_jax.weights.errors import WeightsError


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


def llama_shapes(cfg: ModelConfig) -> dict:
  """The shape of every array of our LLaMA tree for `cfg` (nested dicts of tuples)."""
  h, i, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
  q, kv = cfg.num_heads * cfg.head_dim, cfg.kv_dim
  tree = {"embed": {"embedding": (v, h)}, "final_norm": {"scale": (h,)}}
  for l in range(cfg.num_layers):
    tree[f"layers_{l}"] = {
        "attn_norm": {"scale": (h,)},
        "attn": {"q_proj": {"kernel": (h, q)}, "k_proj": {"kernel": (h, kv)},
                 "v_proj": {"kernel": (h, kv)}, "o_proj": {"kernel": (q, h)}},
        "mlp_norm": {"scale": (h,)},
        "mlp": {"gate_proj": {"kernel": (h, i)}, "up_proj": {"kernel": (h, i)},
                "down_proj": {"kernel": (i, h)}},
    }
  if not cfg.tie_embeddings:
    tree["lm_head"] = {"kernel": (h, v)}
  return tree


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[prefix + k] = v
  return out


def check_llama_params(params: dict, cfg: ModelConfig, source) -> None:
  """Raises WeightsError naming `source` and the first missing, extra or misshapen array."""
  want = _flatten(llama_shapes(cfg))
  have = _flatten(params)
  for name, shape in want.items():
    if name not in have:
      raise WeightsError(f"{source}: parameter {name} missing (config: num_layers="
                         f"{cfg.num_layers}, hidden_size={cfg.hidden_size})")
    if tuple(have[name].shape) != shape:
      raise WeightsError(f"{source}: parameter {name} has shape {tuple(have[name].shape)}, "
                         f"config expects {shape}")
  extra = sorted(set(have) - set(want))
  if extra:
    raise WeightsError(f"{source}: unexpected parameters {extra[:3]} for config num_layers="
                       f"{cfg.num_layers}")


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
