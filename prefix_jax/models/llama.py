"""LLaMA family: RMSNorm, rotary embeddings (HF rotate-half layout), GQA, SwiGLU MLP."""
from __future__ import annotations

import flax.linen as nn

from prefix_jax.models.decoder import DecoderLM
from prefix_jax.models.layers import Block, Layout, RMSNorm, dense

LAYOUT = Layout(norm="rms", norm_names=("attn_norm", "mlp_norm"), rope=True,
                mlp_names=("gate_proj", "up_proj", "down_proj"))


class LlamaBlock(Block):
  """Params: attn_norm, attn/{q,k,v,o}_proj, mlp_norm, mlp/{gate,up,down}_proj (no biases)."""
  layout: Layout = LAYOUT


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
