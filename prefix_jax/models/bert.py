"""BERT-style encoder: absolute + token-type embeddings, post-LayerNorm layers, GELU MLP.

Prefixes act in every layer's (bidirectional) self-attention; every token, real or padding,
sees every valid prefix slot. The three forms:
  * kv:     per-layer keys/values concatenated in front of the tokens' keys/values;
  * hidden: per-layer vectors projected through that layer's frozen W_k/W_v (with biases).
            BERT is post-LN, so a layer's input is already normalised and the hidden prefix
            enters W_k/W_v without any norm;
  * prompt: vectors in the word-embedding slot in front of the tokens (position and token type
            0 embeddings added, then the embedding LayerNorm), as peft's prompt tuning does.
As in the decoder-only models, prefix slots take positions 0..Lp-1 and real tokens start at
the number of valid prefix slots (HF's `past_key_values_length`, which peft relies on).

The generic pieces (`Attention`, `MLP`, `PostLNLayer`, `run_encoder`) are shared with BART.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from prefix_jax.models import attention
from prefix_jax.models.config import ModelConfig
from prefix_jax.models.decoder import token_layout
from prefix_jax.models.deltas import Delta, sub
from prefix_jax.models.layers import Block, Layout, dense, make_norm, prefix_to_kv
from prefix_jax.models.prefix_types import Prefix, PrefixShapeError
from prefix_jax.models.remat import remat_block

Array = jax.Array

# Top-level param subtrees trained together with the prefix (P-tuning v2 trains the classifier
# on top of the frozen pooler; everything else stays frozen).
HEAD_PARAMS = ("classifier",)


def layer_norm(cfg, dtype, name=None):
  return make_norm(cfg, dtype, POST_LN.norm, name)


def check_length(lp: int, t: int, max_positions: int, what: str = "sequence") -> None:
  if lp + t > max_positions:
    raise PrefixShapeError(f"prefix length {lp} + {what} length {t} = {lp + t} exceeds the "
                           f"model's max_positions {max_positions}")


def nonempty(prefix: Prefix | None) -> Prefix | None:
  """A zero-length prefix is no prefix."""
  return None if prefix is None or prefix.length == 0 else prefix


# BERT layers and BART encoder layers: post-LN, biased split projections, fc1/fc2 MLP.
POST_LN = Layout(post_norm=True, norm="layer_exact", norm_names=("attn_norm", "mlp_norm"),
                 bias=True, mlp_names=("fc1", "fc2"))


class PostLNLayer(Block):
  """x = LN(x + Attn(x)); x = LN(x + MLP(x)) (BERT layer, BART encoder layer).

  Params: attn/{q_proj,k_proj,v_proj,o_proj}, attn_norm, mlp/{fc1,fc2}, mlp_norm.
  """
  layout: Layout = POST_LN


def layer_kv(layer, prefix: Prefix, l: int, project=None):
  """(keys, values) of `prefix` for layer l: kv passes through, hidden goes through W_k/W_v."""
  if prefix.form == "kv":
    return prefix.layer(l)
  if prefix.form == "hidden":
    return (project or layer.prefix_kv)(prefix.layer(l))
  raise PrefixShapeError(f"a {prefix.form} prefix has no per-layer keys/values")


def run_encoder(layers, x: Array, valid: Array, prefix: Prefix | None,
                prefix_valid: Array | None, on_layer_input=None,
                delta: Delta | None = None) -> Array:
  """Bidirectional post-LN `layers` over x [B, T, H] (a prompt is already part of x).

  valid: [B, T] bool, False on padding. `prefix` (kv or hidden form, or None) adds keys in every
  layer; prefix_valid [B, Lp] marks its real slots. `on_layer_input(x)` sees each layer's input;
  `delta` (a method's tree, keyed by layer name) acts in the layers.
  Returns [B, T, H].
  """
  key_valid = valid
  if prefix is not None:
    key_valid = jnp.concatenate([prefix_valid, valid], axis=1)
  mask = attention.bidirectional_mask(valid, key_valid)
  for l, layer in enumerate(layers):
    extra_kv = None if prefix is None else layer_kv(layer, prefix, l)
    if on_layer_input is not None:
      on_layer_input(x)
    x, _ = layer(x, None, mask, extra_kv, None, None, None, None, None, None,
                 sub(delta, layer.name))
  return x


def mean_pool(hidden: Array, mask: Array) -> Array:
  """Mean of hidden [B, T, H] over valid tokens (mask [B, T] bool) -> [B, H]."""
  m = mask.astype(hidden.dtype)[..., None]
  return jnp.sum(hidden * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)


@struct.dataclass
class EncoderOutput:
  """hidden [B, T, H] last hidden state (prompt slots removed); pooled [B, H] tanh(pooler(first
  real token)) (None without a pooler); logits [B, num_labels] (None when cfg.num_labels == 0)."""
  hidden: Array
  pooled: Array | None = None
  logits: Array | None = None


def has_pooler(cfg: ModelConfig) -> bool:
  """cfg.extra['pooler'] (default True); the classification head needs it."""
  return bool(cfg.extra.get("pooler", True)) or cfg.num_labels > 0


class Bert(nn.Module):
  """BERT encoder with pooler and optional classification head.

  Param tree: word_embeddings, position_embeddings, token_type_embeddings (if
  type_vocab_size > 0), embed_norm, layers_{i}/{attn,attn_norm,mlp,mlp_norm}, pooler (unless
  cfg.extra['pooler'] is False and num_labels == 0), classifier (if num_labels > 0; see
  HEAD_PARAMS and `init_head`).
  Head: logits = classifier(tanh(pooler(h[first real token]))), as BertForSequenceClassification
  (dropout left to the trainer).
  """
  cfg: ModelConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"  # what each layer saves for the backward pass (`models.remat`)

  def setup(self):
    c = self.cfg
    embed = lambda n, name: nn.Embed(n, c.hidden_size, dtype=self.dtype, name=name,
                                     embedding_init=nn.initializers.normal(0.02))
    self.word_embeddings = embed(c.vocab_size, "word_embeddings")
    self.position_embeddings = embed(c.max_positions, "position_embeddings")
    if c.type_vocab_size > 0:
      self.token_type_embeddings = embed(c.type_vocab_size, "token_type_embeddings")
    self.embed_norm = layer_norm(c, self.dtype)
    layer = remat_block(PostLNLayer, self.remat)
    self.layers = [layer(c, self.dtype, name=f"layers_{i}") for i in range(c.num_layers)]
    if has_pooler(c):
      self.pooler = dense(c.hidden_size, "pooler", self.dtype, use_bias=True)
    if c.num_labels > 0:
      self.classifier = dense(c.num_labels, "classifier", self.dtype, use_bias=True)

  def _embed(self, x: Array, pos: Array, token_types: Array) -> Array:
    x = x + self.position_embeddings(jnp.clip(pos, 0, self.cfg.max_positions - 1))
    if self.cfg.type_vocab_size > 0:
      x = x + self.token_type_embeddings(token_types)
    return self.embed_norm(x)

  def embed_tokens(self, tokens: Array, pos: Array, token_types: Array | None = None) -> Array:
    """tokens, pos [B, T] -> layer-0 input [B, T, H]."""
    types = jnp.zeros_like(tokens) if token_types is None else token_types
    return self._embed(self.word_embeddings(tokens), pos, types)

  def embed_vectors(self, vectors: Array, pos: Array) -> Array:
    """Prompt vectors [B, Lp, H] in the word-embedding slot -> layer-0 input [B, Lp, H]."""
    return self._embed(vectors.astype(self.dtype), pos, jnp.zeros(pos.shape, jnp.int32))

  def token_embeddings(self, tokens: Array) -> Array:
    """Word embeddings without positions [B, T, H] (prompt init from real words)."""
    return self.word_embeddings(tokens)

  def __call__(self, tokens: Array, *, prefix: Prefix | None = None, mask: Array | None = None,
               token_types: Array | None = None, delta: Delta | None = None) -> EncoderOutput:
    """Encodes tokens [B, T] (mask [B, T] bool, False on padding; token_types [B, T] int;
    delta: a method's tree, see `models.deltas`)."""
    c = self.cfg
    b, t = tokens.shape
    mask = jnp.ones((b, t), bool) if mask is None else mask.astype(bool)
    if mask.shape != (b, t):
      raise PrefixShapeError(f"mask shape {mask.shape} != tokens shape {(b, t)}")
    if token_types is not None and token_types.shape != (b, t):
      raise PrefixShapeError(f"token_types shape {token_types.shape} != tokens shape {(b, t)}")
    if token_types is not None and c.type_vocab_size == 0:
      raise PrefixShapeError("token_types given but the model has type_vocab_size 0")
    prefix = nonempty(prefix)
    lp, pvalid = 0, None
    if prefix is not None:
      prefix.check(num_layers=c.num_layers, hidden_size=c.hidden_size,
                   num_kv_heads=c.num_kv_heads, head_dim=c.head_dim, batch=b)
      lp, pvalid = prefix.length, prefix.valid(b)
    check_length(lp, t, c.max_positions)

    token_pos, prefix_pos = token_layout(mask, pvalid, None)
    x = self.embed_tokens(tokens, token_pos, token_types)
    valid = mask
    if prefix is not None and prefix.form == "prompt":  # prompt slots lead x; no extra keys
      prompt = attention.broadcast_batch(prefix.prompt, b, 2)
      x = jnp.concatenate([self.embed_vectors(prompt, prefix_pos).astype(x.dtype), x], axis=1)
      valid, prefix = jnp.concatenate([pvalid, mask], axis=1), None
    # A 'hidden' prefix initialised from activations starts from these layer inputs.
    sow = lambda h: self.sow("intermediates", "layer_inputs", h)
    x = run_encoder(self.layers, x, valid, prefix, pvalid, sow, delta)[:, -t:]

    if not has_pooler(c):
      return EncoderOutput(hidden=x)
    first = jnp.argmax(mask, axis=-1)  # [CLS]: the first real token (index 0 with right padding)
    cls = jnp.take_along_axis(x, first[:, None, None], axis=1)[:, 0]
    pooled = jnp.tanh(self.pooler(cls))
    logits = self.classifier(pooled) if c.num_labels > 0 else None
    return EncoderOutput(hidden=x, pooled=pooled, logits=logits)

  def sentence_embedding(self, tokens: Array, *, prefix: Prefix | None = None,
                         mask: Array | None = None, token_types: Array | None = None,
                         normalize: bool = True) -> Array:
    """Sentence-transformers embedding [B, H]: mean over valid tokens, then L2-normalised
    (all-MiniLM-L6-v2's Pooling(mean) + Normalize)."""
    b, t = tokens.shape
    mask = jnp.ones((b, t), bool) if mask is None else mask.astype(bool)
    out = self(tokens, prefix=prefix, mask=mask, token_types=token_types)
    emb = mean_pool(out.hidden, mask)
    if normalize:
      emb = emb / jnp.maximum(jnp.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    return emb

  def prefix_to_kv(self, prefix: Prefix) -> Prefix:
    """Per-layer keys/values of a kv or hidden prefix (hidden: through each layer's W_k/W_v)."""
    return prefix_to_kv(prefix, [layer.prefix_kv for layer in self.layers])


def init_head(cfg: ModelConfig, key: Array) -> dict:
  """Fresh classifier params {'classifier': {kernel [H, num_labels], bias}} for a checkpoint
  without one (e.g. all-MiniLM-L6-v2): `params = {**params, **init_head(cfg, key)}`."""
  if cfg.num_labels <= 0:
    raise ValueError(f"init_head needs cfg.num_labels > 0, got {cfg.num_labels}")
  return {"classifier": {
      "kernel": 0.02 * jax.random.normal(key, (cfg.hidden_size, cfg.num_labels), jnp.float32),
      "bias": jnp.zeros((cfg.num_labels,), jnp.float32)}}
