"""GPT-2: learned absolute positions, pre-LayerNorm blocks, fused QKV, GELU (tanh) MLP."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from prefix_jax.models import attention
from prefix_jax.models.decoder import DecoderLM, gather_positions
from prefix_jax.models.layers import ACTIVATIONS, dense


def _layer_norm(cfg, dtype, name=None):
  return nn.LayerNorm(epsilon=cfg.norm_eps, dtype=dtype, name=name)


class GPT2Attention(nn.Module):
  cfg: object
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    c = self.cfg
    self.c_attn = dense(3 * c.hidden_size, "c_attn", self.dtype, use_bias=True)
    self.c_proj = dense(c.hidden_size, "c_proj", self.dtype, use_bias=True)

  def _qkv(self, x):
    c = self.cfg
    q, k, v = jnp.split(self.c_attn(x), 3, axis=-1)
    shape = (*x.shape[:-1], c.num_heads, c.head_dim)
    return q.reshape(shape), k.reshape(shape), v.reshape(shape)

  def project_kv(self, x, pos):
    """x [B, S, H] -> keys, values [B, S, Hkv, D] (positions are already in x for GPT-2)."""
    _, k, v = self._qkv(x)
    return k, v

  def __call__(self, x, q_pos, mask, extra_kv, layer_cache, cache_index, out_pos=None):
    q, k, v = self._qkv(x)
    self.sow("intermediates", "kv", (k, v))
    ek, ev = extra_kv if extra_kv is not None else (None, None)
    k, v, layer_cache = attention.gather_keys(k, v, extra_k=ek, extra_v=ev,
                                              layer_cache=layer_cache, cache_index=cache_index)
    out = attention.attend(q, k, v, mask).reshape(*x.shape[:-1], -1)
    if out_pos is not None:
      out = gather_positions(out, out_pos)
    return self.c_proj(out), layer_cache


class GPT2MLP(nn.Module):
  cfg: object
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    h = dense(c.intermediate_size, "c_fc", self.dtype, use_bias=True)(x)
    return dense(c.hidden_size, "c_proj", self.dtype, use_bias=True)(ACTIVATIONS[c.activation](h))


class GPT2Block(nn.Module):
  cfg: object
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.ln_1 = _layer_norm(self.cfg, self.dtype)
    self.attn = GPT2Attention(self.cfg, self.dtype)
    self.ln_2 = _layer_norm(self.cfg, self.dtype)
    self.mlp = GPT2MLP(self.cfg, self.dtype)

  def prefix_kv(self, hidden, pos):
    return self.attn.project_kv(self.ln_1(hidden), pos)

  def __call__(self, x, q_pos, mask, extra_kv=None, layer_cache=None, cache_index=None,
               out_pos=None):
    h, layer_cache = self.attn(self.ln_1(x), q_pos, mask, extra_kv, layer_cache, cache_index,
                               out_pos)
    x = (x if out_pos is None else gather_positions(x, out_pos)) + h
    return x + self.mlp(self.ln_2(x)), layer_cache


class GPT2(DecoderLM):
  """GPT-2 decoder. Param tree: wte, wpe, h_{i}/{ln_1,attn/{c_attn,c_proj},ln_2,mlp}, ln_f;
  the LM head is tied to wte."""

  def setup(self):
    c = self.cfg
    self.wte = nn.Embed(c.vocab_size, c.hidden_size, dtype=self.dtype,
                        embedding_init=nn.initializers.normal(0.02))
    self.wpe = nn.Embed(c.max_positions, c.hidden_size, dtype=self.dtype,
                        embedding_init=nn.initializers.normal(0.01))
    block = self.block_class(GPT2Block)
    self.blocks = [block(c, self.dtype, name=f"h_{i}") for i in range(c.num_layers)]
    self.ln_f = _layer_norm(c, self.dtype)

  def embed_tokens(self, tokens, pos):
    return self.wte(tokens) + self.wpe(jnp.clip(pos, 0, self.cfg.max_positions - 1))

  def token_embeddings(self, tokens):
    """Word embeddings without positions [B, T, H] (prompt init from real words)."""
    return self.wte(tokens)

  def embed_vectors(self, vectors, pos):
    return vectors.astype(self.dtype) + self.wpe(jnp.clip(pos, 0, self.cfg.max_positions - 1))

  def final_norm_fn(self, x):
    return self.ln_f(x)

  def unembedding(self):
    """The LM head as a matrix [V, H]: tied to the token embeddings."""
    return self.wte.embedding

  def unembed(self, x):
    return self.wte.attend(x)
