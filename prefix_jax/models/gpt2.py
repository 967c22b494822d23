"""GPT-2: learned absolute positions, pre-LayerNorm blocks, fused QKV, GELU (tanh) MLP."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from prefix_jax.models.decoder import DecoderLM
from prefix_jax.models.layers import Block, Layout, make_norm

LAYOUT = Layout(norm="layer", norm_names=("ln_1", "ln_2"), fused_qkv=True, bias=True,
                mlp_names=("c_fc", "c_proj"))


class GPT2Block(Block):
  """Params: ln_1, attn/{c_attn,c_proj}, ln_2, mlp/{c_fc,c_proj}."""
  layout: Layout = LAYOUT


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
    self.ln_f = make_norm(c, self.dtype, LAYOUT.norm)

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
