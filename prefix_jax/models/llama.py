"""LLaMA family: RMSNorm, rotary embeddings (HF rotate-half layout), GQA, SwiGLU MLP."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from prefix_jax.models import attention
from prefix_jax.models.decoder import DecoderLM, gather_positions
from prefix_jax.models.layers import RMSNorm, dense


class LlamaAttention(nn.Module):
  cfg: object
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    c = self.cfg
    self.q_proj = dense(c.num_heads * c.head_dim, "q_proj", self.dtype)
    self.k_proj = dense(c.kv_dim, "k_proj", self.dtype)
    self.v_proj = dense(c.kv_dim, "v_proj", self.dtype)
    self.o_proj = dense(c.hidden_size, "o_proj", self.dtype)

  def project_kv(self, x, pos):
    """x [B, S, H], pos [B, S] -> keys (post-RoPE), values [B, S, Hkv, D]."""
    c = self.cfg
    k = self.k_proj(x).reshape(*x.shape[:-1], c.num_kv_heads, c.head_dim)
    v = self.v_proj(x).reshape(*x.shape[:-1], c.num_kv_heads, c.head_dim)
    return attention.apply_rope(k, pos, c.rope_theta), v

  def __call__(self, x, q_pos, mask, extra_kv, layer_cache, cache_index, out_pos=None):
    c = self.cfg
    q = self.q_proj(x).reshape(*x.shape[:-1], c.num_heads, c.head_dim)
    q = attention.apply_rope(q, q_pos, c.rope_theta)
    k, v = self.project_kv(x, q_pos)
    self.sow("intermediates", "kv", (k, v))
    ek, ev = extra_kv if extra_kv is not None else (None, None)
    k, v, layer_cache = attention.gather_keys(k, v, extra_k=ek, extra_v=ev,
                                              layer_cache=layer_cache, cache_index=cache_index)
    out = attention.attend(q, k, v, mask).reshape(*x.shape[:-1], -1)
    if out_pos is not None:
      out = gather_positions(out, out_pos)
    return self.o_proj(out), layer_cache


class LlamaMLP(nn.Module):
  cfg: object
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    gate = dense(c.intermediate_size, "gate_proj", self.dtype)(x)
    up = dense(c.intermediate_size, "up_proj", self.dtype)(x)
    return dense(c.hidden_size, "down_proj", self.dtype)(jax.nn.silu(gate) * up)


class LlamaBlock(nn.Module):
  cfg: object
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.attn_norm = RMSNorm(self.cfg.norm_eps, self.dtype)
    self.attn = LlamaAttention(self.cfg, self.dtype)
    self.mlp_norm = RMSNorm(self.cfg.norm_eps, self.dtype)
    self.mlp = LlamaMLP(self.cfg, self.dtype)

  def prefix_kv(self, hidden, pos):
    """Hidden prefix [B, Lp, H] at positions [B, Lp] -> keys/values [B, Lp, Hkv, D]."""
    return self.attn.project_kv(self.attn_norm(hidden), pos)

  def __call__(self, x, q_pos, mask, extra_kv=None, layer_cache=None, cache_index=None,
               out_pos=None):
    h, layer_cache = self.attn(self.attn_norm(x), q_pos, mask, extra_kv, layer_cache, cache_index,
                               out_pos)
    x = (x if out_pos is None else gather_positions(x, out_pos)) + h
    return x + self.mlp(self.mlp_norm(x)), layer_cache


class Llama(DecoderLM):
  """LLaMA decoder. Param tree: embed, layers_{i}/{attn_norm,attn,mlp_norm,mlp}, final_norm,
  lm_head (absent with tied embeddings)."""

  def setup(self):
    c = self.cfg
    self.embed = nn.Embed(c.vocab_size, c.hidden_size, dtype=self.dtype,
                          embedding_init=nn.initializers.normal(0.02))
    block = self.block_class(LlamaBlock)
    self.blocks = [block(c, self.dtype, name=f"layers_{i}") for i in range(c.num_layers)]
    self.final_norm = RMSNorm(c.norm_eps, self.dtype)
    if not c.tie_embeddings:
      self.lm_head = dense(c.vocab_size, "lm_head", self.dtype)

  def embed_tokens(self, tokens, pos):
    return self.embed(tokens)

  def token_embeddings(self, tokens):
    return self.embed(tokens)

  def embed_vectors(self, vectors, pos):
    return vectors.astype(self.dtype)

  def final_norm_fn(self, x):
    return self.final_norm(x)

  def unembedding(self):
    """The LM head as a matrix [V, H] (logits = x @ W.T)."""
    if self.cfg.tie_embeddings:
      return self.embed.embedding
    return self.lm_head.variables["params"]["kernel"].T

  def unembed(self, x):
    if self.cfg.tie_embeddings:
      return self.embed.attend(x)
    return self.lm_head(x)
