"""Model FLOPs of a train step, counted analytically, and the machine's measured matmul FLOP/s.

Counting (one step, B x T tokens, Lp prefix slots, K unembedded positions per row):
  forward   = 2 * N_layer_matmul * B*T  +  2 * V*H * B*K  +  attention
  attention = 2 matmuls (Q K^T, P V) of 2 * B*T*(Lp+T)*Hq*D each, per layer (the whole score
              matrix, as it is computed; causal masking does not skip work here)
  backward, prefix-tuning: activation gradients only (dX = dY W^T: one forward's worth of
              matmul FLOPs) and attention's 4 gradient matmuls (2x its forward); no weight
              gradients. This slightly over-counts layer 0, whose input gradient is not needed.
  backward, full fine-tuning: activation and weight gradients (2x forward), attention 2x.
Embedding lookups, norms, activations, softmax and the optimizer are not counted (not matmuls).

`MatmulJob` times jitted XLA dots of the model's own matmul shapes, forward [B*T, in] @ [in, out]
and activation-gradient [B*T, out] @ [out, in]^T, and reports the FLOP/s of all of them
weighted by how often a step runs each: the rate a step made only of matmuls would reach.
"""
from __future__ import annotations

import time

import numpy as np


def matmul_shapes(shape: dict) -> list[tuple[str, int, int, int]]:
  """(name, in, out, times per forward) of every weight matmul of a decoder of `shape`."""
  h, inter, nl = shape["hidden_size"], shape["intermediate_size"], shape["num_layers"]
  heads = shape["num_heads"]
  d = h // heads
  kv = (shape.get("num_kv_heads") or heads) * d
  if shape["arch"] == "gpt2":
    layer = [("c_attn", h, 3 * h), ("attn.c_proj", h, h), ("c_fc", h, inter),
             ("mlp.c_proj", inter, h)]
  else:
    layer = [("q_proj", h, heads * d), ("k_proj/v_proj", h, kv), ("o_proj", heads * d, h),
             ("gate_proj/up_proj", h, inter), ("down_proj", inter, h)]
  repeat = {"k_proj/v_proj": 2, "gate_proj/up_proj": 2}
  out = [(n, i, o, nl * repeat.get(n, 1)) for n, i, o in layer]
  return out + [("unembed", h, shape["vocab_size"], 1)]


def step_flops(shape: dict, *, batch: int, seq_len: int, prefix_len: int, method: str,
               logit_positions: int | None = None) -> dict[str, float]:
  """Analytic model FLOPs of one train step (see the module docstring); 'total' is the sum."""
  tokens = batch * seq_len
  k = seq_len if logit_positions is None else logit_positions
  fwd = 0.0
  for name, i, o, times in matmul_shapes(shape):
    fwd += 2.0 * i * o * times * (batch * k if name == "unembed" else tokens)
  heads = shape["num_heads"]
  d = shape["hidden_size"] // heads
  attn = shape["num_layers"] * 2 * 2.0 * batch * seq_len * (prefix_len + seq_len) * heads * d
  weight_grads = method == "full"
  bwd = fwd * (2 if weight_grads else 1) + 2 * attn
  return {"forward_matmul": fwd, "attention_forward": attn, "backward": bwd,
          "total": fwd + attn + bwd}


class MatmulJob:
  """Times each of the model's matmul shapes `reps` times per call (median per shape)."""

  def __init__(self, *, shape: dict, batch: int, seq_len: int, dtype: str = "float32",
               reps: int = 3, seed: int = 0):
    import jax
    import jax.numpy as jnp
    dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    rng = np.random.default_rng(seed)
    m = batch * seq_len
    self._reps = reps
    self._cases = []
    fwd = jax.jit(lambda x, w: x @ w)
    bwd = jax.jit(lambda dy, w: dy @ w.T)
    for name, i, o, times in matmul_shapes(shape):
      w = jnp.asarray(rng.standard_normal((i, o), np.float32) * 0.02, dt)
      x = jnp.asarray(rng.standard_normal((m, i), np.float32), dt)
      dy = jnp.asarray(rng.standard_normal((m, o), np.float32), dt)
      flops = 2.0 * m * i * o
      self._cases.append((f"{name} fwd [{m}x{i}]@[{i}x{o}]", fwd, (x, w), flops, times))
      self._cases.append((f"{name} dX [{m}x{o}]@[{o}x{i}]", bwd, (dy, w), flops, times))
    self.info = {"shapes": [c[0] for c in self._cases], "dtype": dtype}

  def run(self) -> dict:
    import jax
    per_shape, total_t, total_f = {}, 0.0, 0.0
    for name, fn, args, flops, times in self._cases:
      ts = []
      for _ in range(self._reps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - start)
      t = float(np.median(ts))
      per_shape[name] = flops / t
      total_t += t * times
      total_f += flops * times
    return {"seconds": total_t, "tokens": total_f, "flops": total_f, "per_shape": per_shape}
