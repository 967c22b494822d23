"""BART encoder-decoder: learned positions (offset 2), layernorm_embedding, post-LN layers,
GELU, optional sqrt(H) embedding scale, LM head tied to the shared embedding + final_logits_bias.

Prefixes come as a `Seq2SeqPrefix` (encoder self-attention, decoder self-attention, decoder
cross-attention). Positions follow the codebase's rule: on each side, prefix slots take
positions 0..Lp-1 and real tokens start at the number of valid prefix slots (for the decoder
this is HF's `past_key_values_length`, i.e. what peft's prefix tuning does). The cross prefix
has no position: it is extra memory that every target token sees.
An encoder prompt is fed in the word-embedding slot (not multiplied by the embedding scale,
as peft's `inputs_embeds`); its encoder outputs stay in the memory the decoder attends to.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

import dataclasses

from prefix_jax.models import attention
from prefix_jax.models.bert import (POST_LN, PostLNLayer, check_length, layer_kv, layer_norm,
                                    run_encoder)
from prefix_jax.models.config import ModelConfig
from prefix_jax.models.decoder import KVCache, key_layout, token_layout
from prefix_jax.models.deltas import Delta, sub
from prefix_jax.models.layers import Block, Layout, dense, prefix_to_kv
from prefix_jax.models.prefix_types import Prefix, PrefixShapeError
from prefix_jax.models.remat import remat_block
from prefix_jax.models.seq2seq_prefix import Seq2SeqPrefix

Array = jax.Array

POSITION_OFFSET = 2  # BART's learned position table has 2 extra leading rows


@struct.dataclass
class Memory:
  """Encoder output: hidden [B, S', H] and mask [B, S'] bool (S' = Lp + S with a prompt)."""
  hidden: Array
  mask: Array


def shift_tokens_right(tokens: Array, start_id: int) -> Array:
  """[B, T] -> [B, T]: `start_id` then tokens[:, :-1] (HF's default decoder input)."""
  start = jnp.full((tokens.shape[0], 1), start_id, tokens.dtype)
  return jnp.concatenate([start, tokens[:, :-1]], axis=1)


def _num_decoder_layers(cfg: ModelConfig) -> int:
  return cfg.num_decoder_layers or cfg.num_layers


class _StackEmbedding:
  """What each stack embeds with (params live in that stack): embed_positions,
  layernorm_embedding, and its own embed_tokens when embeddings are untied."""

  def _setup_embedding(self):
    c = self.cfg
    if not c.tie_embeddings:  # transformers 5 unties the encoder/decoder token tables too
      self.embed_tokens = nn.Embed(c.vocab_size, c.hidden_size, dtype=self.dtype,
                                   embedding_init=nn.initializers.normal(0.02))
    self.embed_positions = nn.Embed(c.max_positions + POSITION_OFFSET, c.hidden_size,
                                    dtype=self.dtype, embedding_init=nn.initializers.normal(0.02))
    self.layernorm_embedding = layer_norm(c, self.dtype)

  def embed(self, x, pos):
    """layernorm_embedding(x + embed_positions[pos + 2]); x [B, S, H], pos [B, S]."""
    pos = jnp.clip(pos, 0, self.cfg.max_positions - 1) + POSITION_OFFSET
    return self.layernorm_embedding(x + self.embed_positions(pos))


class BartEncoder(_StackEmbedding, nn.Module):
  """Params: embed_positions, layernorm_embedding, layers_{i} (`PostLNLayer`), embed_tokens
  (only with untied embeddings)."""
  cfg: ModelConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"  # what each layer saves for the backward pass (`models.remat`)

  def setup(self):
    c = self.cfg
    self._setup_embedding()
    layer = remat_block(PostLNLayer, self.remat)
    self.layers = [layer(c, self.dtype, name=f"layers_{i}") for i in range(c.num_layers)]

  def __call__(self, x, pos, valid, prefix: Prefix | None, prefix_valid, delta=None):
    """Word (or prompt) embeddings x [B, S, H] at positions [B, S] -> [B, S, H]."""
    return run_encoder(self.layers, self.embed(x, pos), valid, prefix, prefix_valid,
                       delta=delta)


class BartDecoderLayer(Block):
  """x = LN(x + SelfAttn(x)); x = LN(x + CrossAttn(x, memory)); x = LN(x + MLP(x)).

  Params: attn, attn_norm, cross_attn, cross_norm, mlp/{fc1,fc2}, mlp_norm.
  """
  layout: Layout = dataclasses.replace(POST_LN, cross=True)


class BartDecoder(_StackEmbedding, nn.Module):
  """Params: embed_positions, layernorm_embedding, layers_{i} (`BartDecoderLayer`),
  embed_tokens (only with untied embeddings)."""
  cfg: ModelConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"

  def setup(self):
    c = self.cfg
    self._setup_embedding()
    layer = remat_block(BartDecoderLayer, self.remat)
    self.layers = [layer(c, self.dtype, name=f"layers_{i}")
                   for i in range(_num_decoder_layers(c))]

  def __call__(self, x, pos, self_mask, memory, cross_mask, prefix: Prefix | None,
               cross: Prefix | None, cache: KVCache | None, cache_index, delta=None):
    """Target embeddings x [B, T, H] at positions [B, T] -> ([B, T, H], keys, values)."""
    x = self.embed(x, pos)
    keys, values = [], []
    for l, layer in enumerate(self.layers):
      self_kv = None if prefix is None else layer_kv(layer, prefix, l)
      cross_kv = None if cross is None else layer_kv(layer, cross, l, layer.cross_prefix_kv)
      layer_cache = None if cache is None else (cache.keys[l], cache.values[l])
      x, layer_cache = layer(x, None, self_mask, self_kv, layer_cache, cache_index, None,
                             memory, cross_mask, cross_kv, sub(delta, layer.name))
      if layer_cache is not None:
        keys.append(layer_cache[0])
        values.append(layer_cache[1])
    return x, keys, values


class Bart(nn.Module):
  """BART. `apply(params, src [B, S], tgt [B, T], prefix=Seq2SeqPrefix, src_mask, tgt_mask)`
  -> logits [B, T, V]; `encode` / `decode` for step-wise decoding with a `KVCache`.

  Param tree: shared (token embedding of both stacks and the LM head), encoder/{embed_positions,
  layernorm_embedding, layers_{i}}, decoder/{embed_positions, layernorm_embedding,
  layers_{i}}, final_logits_bias [V]. With cfg.tie_embeddings False (as transformers 5 unties
  them): no shared; encoder/embed_tokens, decoder/embed_tokens and lm_head instead.
  cfg.extra['scale_embedding'] multiplies token embeddings by sqrt(H).
  """
  cfg: ModelConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"  # what each layer of both stacks saves for backward (`models.remat`)

  def setup(self):
    c = self.cfg
    if c.tie_embeddings:
      self.shared = nn.Embed(c.vocab_size, c.hidden_size, dtype=self.dtype,
                             embedding_init=nn.initializers.normal(0.02))
    self.encoder = BartEncoder(c, self.dtype, self.remat)
    self.decoder = BartDecoder(c, self.dtype, self.remat)
    self.final_logits_bias = self.param("final_logits_bias", nn.initializers.zeros,
                                        (c.vocab_size,))
    if not c.tie_embeddings:
      self.lm_head = dense(c.vocab_size, "lm_head", self.dtype)

  def _embed_tokens(self, tokens, stack):
    scale = math.sqrt(self.cfg.hidden_size) if self.cfg.extra.get("scale_embedding") else 1.0
    table = self.shared if self.cfg.tie_embeddings else stack.embed_tokens
    return table(tokens) * jnp.asarray(scale, self.dtype)

  def unembed(self, hidden: Array) -> Array:
    """Decoder hidden [..., H] -> logits [..., V]."""
    out = self.shared.attend(hidden) if self.cfg.tie_embeddings else self.lm_head(hidden)
    return out + self.final_logits_bias.astype(out.dtype)

  def _check(self, prefix, batch: int | None) -> Seq2SeqPrefix:
    if prefix is None:
      return Seq2SeqPrefix()
    if not isinstance(prefix, Seq2SeqPrefix):
      raise PrefixShapeError(f"BART takes a Seq2SeqPrefix(encoder=, decoder=, cross=), got "
                             f"{type(prefix).__name__}")
    c = self.cfg
    prefix.check(num_encoder_layers=c.num_layers, num_decoder_layers=_num_decoder_layers(c),
                 hidden_size=c.hidden_size, num_kv_heads=c.num_kv_heads, head_dim=c.head_dim,
                 batch=batch)
    return Seq2SeqPrefix(**prefix.parts())

  def encode(self, src: Array, *, prefix: Seq2SeqPrefix | None = None,
             src_mask: Array | None = None, delta: Delta | None = None) -> Memory:
    """Encodes src [B, S] (src_mask [B, S] bool) with `prefix.encoder` -> Memory; `delta`: a
    method's tree (`models.deltas`), its `encoder` part acts here."""
    b, s = src.shape
    src_mask = jnp.ones((b, s), bool) if src_mask is None else src_mask.astype(bool)
    if src_mask.shape != (b, s):
      raise PrefixShapeError(f"src_mask shape {src_mask.shape} != src shape {(b, s)}")
    enc = self._check(prefix, b).encoder
    lp, pvalid = (0, None) if enc is None else (enc.length, enc.valid(b))
    check_length(lp, s, self.cfg.max_positions, "source")
    token_pos, prefix_pos = token_layout(src_mask, pvalid, None)
    x = self._embed_tokens(src, self.encoder)
    if enc is not None and enc.form == "prompt":
      prompt = attention.broadcast_batch(enc.prompt, b, 2).astype(x.dtype)
      valid = jnp.concatenate([pvalid, src_mask], axis=1)
      hidden = self.encoder(jnp.concatenate([prompt, x], axis=1),
                            jnp.concatenate([prefix_pos, token_pos], axis=1), valid, None, None,
                            sub(delta, "encoder"))
      return Memory(hidden=hidden, mask=valid)
    return Memory(hidden=self.encoder(x, token_pos, src_mask, enc, pvalid, sub(delta, "encoder")),
                  mask=src_mask)

  def decode(self, tgt: Array, memory: Memory, *, prefix: Seq2SeqPrefix | None = None,
             tgt_mask: Array | None = None, cache: KVCache | None = None,
             return_hidden: bool = False, delta: Delta | None = None):
    """Decodes tgt [B, T] against `memory` with `prefix.decoder` and `prefix.cross`.

    With a cache (`init_cache`), the tokens' (and a decoder prefix's) keys/values are written
    at `cache.index`; pass the decoder prefix only on the first call (it stays in the cache),
    the cross prefix on every call. Returns logits [B, T, V] (hidden [B, T, H] with
    return_hidden); with a cache `(out, new_cache)`.
    """
    b, t = tgt.shape
    tgt_mask = jnp.ones((b, t), bool) if tgt_mask is None else tgt_mask.astype(bool)
    if tgt_mask.shape != (b, t):
      raise PrefixShapeError(f"tgt_mask shape {tgt_mask.shape} != tgt shape {(b, t)}")
    if memory.hidden.shape[0] != b:
      raise PrefixShapeError(f"memory batch {memory.hidden.shape[0]} != tgt batch {b}")
    pre = self._check(prefix, b)
    dec, cross = pre.decoder, pre.cross
    lp, pvalid = (0, None) if dec is None else (dec.length, dec.valid(b))
    if cache is None:
      check_length(lp, t, self.cfg.max_positions, "target")
    elif lp + t > cache.size:
      raise PrefixShapeError(f"prefix length {lp} + target length {t} exceeds the cache "
                             f"size {cache.size}")

    start = None if cache is None else cache.next_position()
    token_pos, prefix_pos = token_layout(tgt_mask, pvalid, None, start)
    key_pos, key_valid, index, n_written = key_layout(
        token_pos, tgt_mask, None if dec is None else prefix_pos, pvalid, cache)
    self_mask = attention.causal_mask(token_pos, key_pos, key_valid)
    cross_valid = memory.mask if cross is None else jnp.concatenate(
        [cross.valid(b), memory.mask], axis=1)
    cross_mask = attention.bidirectional_mask(tgt_mask, cross_valid)

    x = self._embed_tokens(tgt, self.decoder)
    hidden, keys, values = self.decoder(x, token_pos, self_mask, memory.hidden, cross_mask, dec,
                                        cross, cache, index, sub(delta, "decoder"))
    out = hidden if return_hidden else self.unembed(hidden)
    if cache is None:
      return out
    return out, cache.advance(keys, values, key_pos, key_valid, n_written)

  def __call__(self, src: Array, tgt: Array | None = None, *,
               prefix: Seq2SeqPrefix | None = None, src_mask: Array | None = None,
               tgt_mask: Array | None = None, return_hidden: bool = False,
               delta: Delta | None = None) -> Array:
    """logits [B, T, V] of tgt [B, T] given src [B, S]. tgt=None: src shifted right behind
    decoder_start_token_id (HF's default)."""
    if tgt is None:
      c = self.cfg
      start = next((i for i in (c.decoder_start_token_id, c.eos_token_id) if i is not None), 0)
      tgt = shift_tokens_right(src, start)
    memory = self.encode(src, prefix=prefix, src_mask=src_mask, delta=delta)
    return self.decode(tgt, memory, prefix=prefix, tgt_mask=tgt_mask, return_hidden=return_hidden,
                       delta=delta)

  def prefix_to_kv(self, prefix: Seq2SeqPrefix) -> Seq2SeqPrefix:
    """Hidden parts -> per-layer keys/values (through the frozen W_k/W_v they feed); kv parts
    and an encoder prompt pass through."""
    # The batch of a per-example part (shape checks need it); None when all parts are shared.
    batch = next((jax.tree_util.tree_leaves(p)[0].shape[0]
                  for p in prefix.parts().values() if p.batched), None)
    pre = self._check(prefix, batch)

    def convert(p, layers, project):
      if p is None or p.form != "hidden":
        return p
      return prefix_to_kv(p, [project(layer) for layer in layers])

    return Seq2SeqPrefix(
        encoder=convert(pre.encoder, self.encoder.layers, lambda m: m.prefix_kv),
        decoder=convert(pre.decoder, self.decoder.layers, lambda m: m.prefix_kv),
        cross=convert(pre.cross, self.decoder.layers, lambda m: m.cross_prefix_kv))

  @staticmethod
  def init_cache(cfg: ModelConfig, batch: int, size: int, dtype=jnp.float32) -> KVCache:
    """An empty decoder self-attention cache of `size` slots (prefix + target tokens)."""
    return KVCache.init(cfg.replace(num_layers=_num_decoder_layers(cfg)), batch, size, dtype)
