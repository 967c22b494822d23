"""The layers every backbone is made of: norms, one attention module, one MLP, one block.

A backbone picks its variant with a `Layout` (parameter names, fused or split QKV, biases,
RoPE, pre- or post-norm, cross-attention); the math is written once. The named points where
methods act (`models.deltas`): the projections q, k, v, o, up, down, gate (LoRA), the
sublayer outputs `adapter_attn` / `adapter_mlp` (adapters) and the attention's queries
(LLaMA-Adapter's adaption prompt).
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from prefix_jax.models import attention
from prefix_jax.models.deltas import (Delta, adaption_attention, add_adapter, add_lora,
                                      sub)
from prefix_jax.models.prefix_types import Prefix, PrefixShapeError

Array = jax.Array


class RMSNorm(nn.Module):
  """x * rsqrt(mean(x^2) + eps) * scale, computed in float32 (as HF LLaMA)."""
  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (normed * scale).astype(self.dtype)


ACTIVATIONS = {
    "silu": jax.nn.silu,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),   # GPT-2's tanh approximation
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),      # BERT / BART
    "relu": jax.nn.relu,
}


def dense(features: int, name: str, dtype, use_bias: bool = False, std: float = 0.02):
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, name=name,
                  kernel_init=nn.initializers.normal(std))


def gather_positions(x: Array, pos: Array) -> Array:
  """x [B, T, ...] at positions [G, K] of its G groups of B/G rows flattened -> [G, K, ...]
  (a position is `row_in_group * T + t`; see `train.loss.add_loss_positions`)."""
  g = pos.shape[0]
  x = x.reshape(g, -1, *x.shape[2:])
  return jnp.take_along_axis(x, pos.reshape(*pos.shape, *([1] * (x.ndim - 2))), axis=1)


@dataclasses.dataclass(frozen=True)
class Layout:
  """What differs between the backbones' blocks.

  post_norm:  x = LN(x + f(x)) (BERT, BART) instead of x + f(LN(x)) (GPT-2, LLaMA).
  norm:       'layer' (LayerNorm), 'layer_exact' (two-pass variance) or 'rms'.
  norm_names: the names of the attention and MLP norms.
  fused_qkv:  one `c_attn` [H, 3H] and `c_proj` (GPT-2) instead of q/k/v/o_proj.
  bias:       biased projections.  rope: rotary positions on queries and keys.
  mlp_names:  (up, down), or (gate, up, down) for a gated (SwiGLU) MLP.
  cross:      a cross-attention sublayer (`cross_attn`, `cross_norm`) after self-attention.
  """
  post_norm: bool = False
  norm: str = "layer"
  norm_names: tuple[str, str] = ("attn_norm", "mlp_norm")
  fused_qkv: bool = False
  bias: bool = False
  rope: bool = False
  mlp_names: tuple[str, ...] = ("fc1", "fc2")
  cross: bool = False


def make_norm(cfg, dtype, kind: str, name: str | None = None) -> nn.Module:
  if kind == "rms":
    return RMSNorm(cfg.norm_eps, dtype, name=name)
  # Exact two-pass variance: post-LN residual streams can be large, and parity is to 1e-4.
  return nn.LayerNorm(epsilon=cfg.norm_eps, dtype=dtype, name=name,
                      use_fast_variance=kind != "layer_exact")


def _keep(scope_value, new):  # sow a single array by name (not a tuple of calls)
  return new


class Attention(nn.Module):
  """Self- or cross-attention with an optional prefix / cache. Params: c_attn, c_proj (fused)
  or q_proj, k_proj, v_proj, o_proj."""
  cfg: object
  dtype: jnp.dtype = jnp.float32
  layout: Layout = Layout()

  def setup(self):
    c, lo = self.cfg, self.layout
    if lo.fused_qkv:
      self.c_attn = dense(3 * c.num_heads * c.head_dim, "c_attn", self.dtype, lo.bias)
      self.c_proj = dense(c.hidden_size, "c_proj", self.dtype, lo.bias)
    else:
      self.q_proj = dense(c.num_heads * c.head_dim, "q_proj", self.dtype, lo.bias)
      self.k_proj = dense(c.kv_dim, "k_proj", self.dtype, lo.bias)
      self.v_proj = dense(c.kv_dim, "v_proj", self.dtype, lo.bias)
      self.o_proj = dense(c.hidden_size, "o_proj", self.dtype, lo.bias)

  def _project(self, x: Array, names: str, delta: Delta | None) -> list[Array]:
    """The projections `names` (of 'qkv') of x [..., H], heads split: [..., H?, D]."""
    c = self.cfg
    if self.layout.fused_qkv:
      parts = dict(zip("qkv", jnp.split(self.c_attn(x), 3, axis=-1)))
    else:
      parts = {n: getattr(self, f"{n}_proj")(x) for n in names}
    heads = {"q": c.num_heads, "k": c.num_kv_heads, "v": c.num_kv_heads}
    return [add_lora(parts[n], x, delta, n).reshape(*x.shape[:-1], heads[n], c.head_dim)
            for n in names]

  def project_kv(self, x: Array, pos: Array | None, delta: Delta | None = None):
    """x [..., S, H] (positions [..., S] with RoPE) -> keys, values [..., S, Hkv, D]."""
    k, v = self._project(x, "kv", delta)
    if self.layout.rope:
      k = attention.apply_rope(k, pos, self.cfg.rope_theta)
    return k, v

  def _output(self, out: Array, delta: Delta | None) -> Array:
    proj = self.c_proj if self.layout.fused_qkv else self.o_proj
    return add_lora(proj(out), out, delta, "o")

  def __call__(self, x, q_pos, mask, extra_kv=None, layer_cache=None, cache_index=None,
               out_pos=None, memory=None, delta: Delta | None = None):
    """Queries from x [B, T, H] at positions q_pos [B, T]; keys/values from `memory`
    [B, S, H] (cross-attention) or x, behind `extra_kv` (prefix keys/values [B?, Lp, Hkv, D])
    and written into `layer_cache` at `cache_index`. mask [B, T, keys]. With out_pos [G, K]
    only those positions are returned. Returns ([B, T, H] or [G, K, H], layer cache)."""
    if memory is None:
      q, k, v = self._project(x, "qkv", delta)
    else:
      (q,) = self._project(x, "q", delta)
      k, v = self._project(memory, "kv", delta)
    if self.layout.rope:
      q = attention.apply_rope(q, q_pos, self.cfg.rope_theta)
      k = attention.apply_rope(k, q_pos, self.cfg.rope_theta)
    self.sow("intermediates", "keys", k, init_fn=lambda: None, reduce_fn=_keep)
    self.sow("intermediates", "values", v, init_fn=lambda: None, reduce_fn=_keep)
    ek, ev = extra_kv if extra_kv is not None else (None, None)
    k, v, layer_cache = attention.gather_keys(k, v, extra_k=ek, extra_v=ev,
                                              layer_cache=layer_cache, cache_index=cache_index)
    out = attention.attend(q, k, v, mask)
    prompt = None if delta is None else delta.get("prompt")
    if prompt is not None:  # LLaMA-Adapter: the adaption prompt's own gated attention
      pk, pv = self._project(prompt.astype(x.dtype), "kv", None)
      out = out + adaption_attention(q, pk, pv, delta.get("gate"))
    out = out.reshape(*x.shape[:-1], -1)
    if out_pos is not None:
      out = gather_positions(out, out_pos)
    return self._output(out, delta), layer_cache


class MLP(nn.Module):
  """down(act(up(x))), or down(act(gate(x)) * up(x)) when gated (names: layout.mlp_names)."""
  cfg: object
  dtype: jnp.dtype = jnp.float32
  layout: Layout = Layout()

  @nn.compact
  def __call__(self, x, delta: Delta | None = None):
    c, lo = self.cfg, self.layout

    def proj(name, logical, features, h):
      out = dense(features, name, self.dtype, use_bias=lo.bias)(h)
      return add_lora(out, h, delta, logical)

    act = ACTIVATIONS[c.activation]
    if len(lo.mlp_names) == 3:
      gate_n, up_n, down_n = lo.mlp_names
      h = act(proj(gate_n, "gate", c.intermediate_size, x)) * proj(
          up_n, "up", c.intermediate_size, x)
    else:
      up_n, down_n = lo.mlp_names
      h = act(proj(up_n, "up", c.intermediate_size, x))
    return proj(down_n, "down", c.hidden_size, h)


class Block(nn.Module):
  """One transformer layer: self-attention (+ cross-attention) + MLP, pre- or post-norm.

  `__call__(x, q_pos, mask, extra_kv, layer_cache, cache_index, out_pos, memory, cross_mask,
  cross_kv, delta) -> (x, layer_cache)`: x [B, T, H] (with out_pos [G, K]: the attention
  output projection, residual and MLP run only there and [G, K, H] comes back).
  """
  cfg: object
  dtype: jnp.dtype = jnp.float32
  layout: Layout = Layout()

  def setup(self):
    c, lo = self.cfg, self.layout
    n_attn, n_mlp = lo.norm_names
    setattr(self, n_attn, make_norm(c, self.dtype, lo.norm))
    self.attn = Attention(c, self.dtype, lo)
    if lo.cross:
      self.cross_attn = Attention(c, self.dtype, dataclasses.replace(lo, rope=False))
      self.cross_norm = make_norm(c, self.dtype, lo.norm)
    setattr(self, n_mlp, make_norm(c, self.dtype, lo.norm))
    self.mlp = MLP(c, self.dtype, lo)

  def _norms(self):
    return tuple(getattr(self, n) for n in self.layout.norm_names)

  def prefix_kv(self, hidden: Array, pos: Array | None = None):
    """Hidden prefix [..., Lp, H] at positions [..., Lp] -> keys/values [..., Lp, Hkv, D]
    (through the layer's own norm when pre-norm, W_k/W_v and RoPE)."""
    norm_attn, _ = self._norms()
    return self.attn.project_kv(hidden if self.layout.post_norm else norm_attn(hidden), pos)

  def cross_prefix_kv(self, hidden: Array):
    """Cross-attention prefix [..., Lp, H] -> keys/values through the cross W_k/W_v."""
    return self.cross_attn.project_kv(hidden, None)

  def __call__(self, x, q_pos, mask, extra_kv=None, layer_cache=None, cache_index=None,
               out_pos=None, memory=None, cross_mask=None, cross_kv=None,
               delta: Delta | None = None):
    post = self.layout.post_norm
    norm_attn, norm_mlp = self._norms()
    h, layer_cache = self.attn(x if post else norm_attn(x), q_pos, mask, extra_kv, layer_cache,
                               cache_index, out_pos, delta=sub(delta, "attn"))
    h = add_adapter(h, None if delta is None else delta.get("adapter_attn"))
    x = (x if out_pos is None else gather_positions(x, out_pos)) + h
    x = norm_attn(x) if post else x
    if self.layout.cross:
      h, _ = self.cross_attn(x, None, cross_mask, cross_kv, memory=memory,
                             delta=sub(delta, "cross_attn"))
      x = self.cross_norm(x + h)
    h = self.mlp(x if post else norm_mlp(x), sub(delta, "mlp"))
    x = x + add_adapter(h, None if delta is None else delta.get("adapter_mlp"))
    return (norm_mlp(x) if post else x), layer_cache


def prefix_to_kv(prefix: Prefix, projections) -> Prefix:
  """Per-layer keys/values of a hidden prefix; kv prefixes pass through.

  projections: one function per layer, hidden [B?, Lp, H] -> (keys, values) [B?, Lp, Hkv, D]
  (that layer's norm, frozen W_k/W_v and RoPE at positions 0..Lp-1: a true prefix).
  """
  if prefix.form == "kv":
    return prefix
  if prefix.form != "hidden":
    raise PrefixShapeError(f"a {prefix.form} prefix has no key/value form")
  kvs = [project(prefix.layer(l)) for l, project in enumerate(projections)]
  axis = 1 if prefix.batched else 0
  return Prefix(keys=jnp.stack([k for k, _ in kvs], axis),
                values=jnp.stack([v for _, v in kvs], axis), mask=prefix.mask)
