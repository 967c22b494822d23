"""What every decoder-only backbone shares: positions, prefix placement, masks, the KV cache.

An architecture subclasses `DecoderLM` and supplies its blocks and four small hooks
(`embed_tokens`, `embed_vectors`, `final_norm_fn`, `unembed`). Each block provides
`__call__(x, q_pos, mask, extra_kv, layer_cache, cache_index, out_pos) -> (x, layer_cache)`
(with `out_pos` [G, K] it returns [G, K, H]: the attention output projection, residual and MLP
run only at those positions, see `gather_positions`) and
`prefix_kv(hidden, pos) -> (k, v)` (the layer's own norm + W_k/W_v (+ RoPE) applied to
hidden-state prefix vectors: a hidden prefix enters attention exactly as its keys/values).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from prefix_jax.models import attention
from prefix_jax.models.config import ModelConfig
from prefix_jax.models.deltas import Delta, sub
from prefix_jax.models.layers import gather_positions, prefix_to_kv  # noqa: F401 (re-export)
from prefix_jax.models.prefix_types import Prefix, PrefixShapeError
from prefix_jax.models.remat import remat_block

Array = jax.Array


@struct.dataclass
class KVCache:
  """Decoding cache: per-layer keys/values plus one position/valid row shared by all layers.

  keys, values: tuples of L arrays [B, S, Hkv, D]; pos [B, S] int32; valid [B, S] bool;
  index: int32 scalar, the next free slot.
  """
  keys: tuple
  values: tuple
  pos: Array
  valid: Array
  index: Array

  @classmethod
  def init(cls, cfg: ModelConfig, batch: int, size: int, dtype=jnp.float32) -> "KVCache":
    if size > cfg.max_positions:
      raise PrefixShapeError(f"cache size {size} exceeds the model's max_positions "
                             f"{cfg.max_positions}")
    shape = (batch, size, cfg.num_kv_heads, cfg.head_dim)
    zeros = tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers))
    return cls(keys=zeros, values=tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers)),
               pos=jnp.zeros((batch, size), jnp.int32), valid=jnp.zeros((batch, size), bool),
               index=jnp.zeros((), jnp.int32))

  @property
  def size(self) -> int:
    return self.pos.shape[1]

  def advance(self, keys, values, pos: Array, valid: Array, n_written: int) -> "KVCache":
    """The cache after a call wrote `n_written` slots: new per-layer keys/values, rows."""
    return KVCache(keys=tuple(keys), values=tuple(values), pos=pos, valid=valid,
                   index=self.index + n_written)

  def next_position(self) -> Array:
    """[B] the logical position after the last valid slot (0 for an empty cache)."""
    return jnp.max(jnp.where(self.valid, self.pos + 1, 0), axis=-1)


def segment_starts(mask: Array, segments: Array) -> Array:
  """[B, T] int: the number of valid tokens before the start of each token's segment (packed
  rows; segment ids [B, T] are contiguous runs)."""
  maski = mask.astype(jnp.int32)
  before = jnp.cumsum(maski, axis=-1) - maski
  first = jnp.concatenate([jnp.ones_like(segments[:, :1], bool),
                           segments[:, 1:] != segments[:, :-1]], axis=1)
  return jax.lax.cummax(jnp.where(first, before, 0), axis=1)


def token_layout(mask: Array, prefix_valid: Array | None, prefix_at: Array | None,
                 start: Array | None = None, segments: Array | None = None):
  """Logical positions of tokens [B, T] and prefix slots [B, Lp].

  Tokens count only valid (non-padding) tokens. The prefix sits before token index
  `prefix_at[b]` (0: a true prefix; the source length: an infix); tokens at or after it are
  shifted by the number of real prefix slots. `start` [B] offsets everything (cache continuation).
  With `segments` [B, T] (packed rows) counting restarts at every segment, so each example of
  a row has the positions it would have alone (after the shared prefix).
  """
  b, t = mask.shape
  maski = mask.astype(jnp.int32)
  base = jnp.cumsum(maski, axis=-1) - 1
  if segments is not None:
    base = base - segment_starts(mask, segments)
  if start is not None:
    base = base + start[:, None]
  if prefix_valid is None:
    return base, None
  at = jnp.zeros((b,), jnp.int32) if prefix_at is None else prefix_at.astype(jnp.int32)
  idx = jnp.arange(t)[None, :]
  after = idx >= at[:, None]
  shift = jnp.sum(prefix_valid.astype(jnp.int32), axis=-1)
  token_pos = base + shift[:, None] * after
  at_pos = jnp.sum(maski * (idx < at[:, None]), axis=-1)
  if start is not None:
    at_pos = at_pos + start
  prefix_pos = at_pos[:, None] + jnp.arange(prefix_valid.shape[1])[None, :]
  return token_pos, prefix_pos


def key_layout(q_pos: Array, q_valid: Array, extra_pos: Array | None,
               extra_valid: Array | None, cache: KVCache | None):
  """Positions / valid flags [B, S] of the keys a layer attends over: extra (prefix) keys in
  front of the tokens' [B, T]; with a cache, those written into its rows at `cache.index`.
  Returns (key_pos, key_valid, cache index or None, number of slots written)."""
  key_pos, key_valid = q_pos, q_valid
  if extra_pos is not None:
    key_pos = jnp.concatenate([extra_pos, q_pos], axis=1)
    key_valid = jnp.concatenate([extra_valid, q_valid], axis=1)
  n_written = key_pos.shape[1]
  if cache is None:
    return key_pos, key_valid, None, n_written
  index = cache.index
  key_pos = jax.lax.dynamic_update_slice(cache.pos, key_pos.astype(jnp.int32), (0, index))
  key_valid = jax.lax.dynamic_update_slice(cache.valid, key_valid, (0, index))
  return key_pos, key_valid, index, n_written


def _layer_kv(block, l: int, prefix: Prefix | None, form, shared: bool, prefix_pos, b: int):
  """The prefix keys/values of layer l: a kv prefix's own, a hidden prefix's through the
  block's norm and W_k/W_v (once for all examples when `shared`); None otherwise."""
  if form == "kv":
    return prefix.layer(l)
  if form != "hidden":
    return None
  hidden = prefix.layer(l)
  if shared:
    return tuple(a[0] for a in block.prefix_kv(hidden[None], prefix_pos[:1]))
  return block.prefix_kv(attention.broadcast_batch(hidden, b, 2), prefix_pos)


class DecoderLM(nn.Module):
  """Base of decoder-only LMs: `apply(params, tokens, prefix=...) -> logits [B, T, V]`."""
  cfg: ModelConfig
  dtype: jnp.dtype = jnp.float32
  remat: str = "none"  # what each block saves for the backward pass (`models.remat`)

  def block_class(self, cls: type[nn.Module]) -> type[nn.Module]:
    """The block class an architecture instantiates per layer, rematerialized as asked."""
    return remat_block(cls, self.remat)

  # Hooks implemented by each architecture -----------------------------------------------------
  def embed_tokens(self, tokens: Array, pos: Array) -> Array:  # [B, T] -> [B, T, H]
    raise NotImplementedError

  def embed_vectors(self, vectors: Array, pos: Array) -> Array:  # prompt [B, Lp, H]
    raise NotImplementedError

  def final_norm_fn(self, x: Array) -> Array:
    raise NotImplementedError

  def unembed(self, x: Array) -> Array:  # [B, T, H] -> [B, T, V]
    raise NotImplementedError

  # -------------------------------------------------------------------------------------------
  def _check_call(self, tokens, mask, prefix, prefix_at, cache, segments, out_pos):
    """(mask [B, T] bool, prefix or None, Lp, its form, its valid slots [B, Lp]); one-line
    errors for inputs that do not fit or cannot go together (before anything is traced)."""
    cfg = self.cfg
    b, t = tokens.shape
    mask = jnp.ones((b, t), bool) if mask is None else mask.astype(bool)
    if mask.shape != (b, t):
      raise PrefixShapeError(f"mask shape {mask.shape} != tokens shape {(b, t)}")
    lp, pvalid, form = 0, None, None
    if prefix is not None and prefix.length == 0:
      prefix = None  # a zero-length prefix is no prefix
    if prefix is not None:
      prefix.check(num_layers=cfg.num_layers, hidden_size=cfg.hidden_size,
                   num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim, batch=b)
      lp, form, pvalid = prefix.length, prefix.form, prefix.valid(b)
    if cache is None and lp + t > cfg.max_positions:
      raise PrefixShapeError(f"prefix length {lp} + sequence length {t} = {lp + t} exceeds the "
                             f"model's max_positions {cfg.max_positions}")
    if cache is not None and lp + t > cache.size:
      raise PrefixShapeError(f"prefix length {lp} + sequence length {t} exceeds the cache "
                             f"size {cache.size}")
    if prefix_at is not None and form == "prompt" and cache is not None:
      raise PrefixShapeError("an infix prompt cannot be decoded with a cache")
    if segments is not None and (cache is not None or prefix_at is not None):
      raise PrefixShapeError("packed rows (segments) take neither a cache nor an infix")
    if out_pos is not None and cache is not None:
      raise PrefixShapeError("out_pos (outputs at some positions only) takes no cache")
    if segments is not None and segments.shape != (b, t):
      raise PrefixShapeError(f"segments shape {segments.shape} != tokens shape {(b, t)}")
    return mask, prefix, lp, form, pvalid

  def __call__(self, tokens: Array, *, prefix: Prefix | None = None, mask: Array | None = None,
               prefix_at: Array | None = None, cache: KVCache | None = None,
               segments: Array | None = None, return_hidden: bool = False,
               out_pos: Array | None = None, delta: Delta | None = None):
    """Runs the backbone. Args:
      tokens: [B, T] int token ids.
      prefix: a `Prefix` (hidden / kv / prompt form, shared or per-example) or None.
      mask: [B, T] bool, False on padding (left or right). Default: all True.
      prefix_at: [B] int, token index before which the prefix sits (infix); default 0.
      cache: a `KVCache` to write into and attend over (decoding); returned updated.
      segments: [B, T] int segment ids of packed rows (several examples per row, each seeing
        only itself and the shared prefix); None: one example per row.
      return_hidden: return the final-norm hidden states [B, T, H] instead of logits.
      out_pos: [G, K] int positions into G groups of B/G rows flattened (`gather_positions`):
        the output is needed only there (the loss positions). The last layer then runs its
        attention output projection and MLP, and the final norm, on G x K positions only: no
        later layer reads the other positions. Not with a cache.
      delta: a method's trainable tree (`models.deltas.Delta`: LoRA, adapters, LLaMA-Adapter)
        acting at the named points of every block; None: the plain backbone.
    Returns:
      logits [B, T, V] (or hidden [B, T, H]; with `out_pos` [G, K, V] or [G, K, H]); with a
      cache, `(out, new_cache)`.
    """
    b, t = tokens.shape
    mask, prefix, lp, form, pvalid = self._check_call(tokens, mask, prefix, prefix_at, cache,
                                                      segments, out_pos)

    start = cache.next_position() if cache is not None else None
    token_pos, prefix_pos = token_layout(mask, pvalid, prefix_at, start, segments)
    x = self.embed_tokens(tokens, token_pos)
    q_pos, q_valid, q_seg = token_pos, mask, segments
    prefix_seg = None if segments is None else jnp.full((b, lp), -1, segments.dtype)
    extra_pos = extra_valid = None
    if form == "prompt":
      prompt = attention.broadcast_batch(prefix.prompt, b, 2)
      x = jnp.concatenate([self.embed_vectors(prompt, prefix_pos).astype(x.dtype), x], axis=1)
      q_pos = jnp.concatenate([prefix_pos, token_pos], axis=1)
      q_valid = jnp.concatenate([pvalid, mask], axis=1)
      if segments is not None:
        q_seg = jnp.concatenate([prefix_seg, segments], axis=1)
    elif form is not None:
      extra_pos, extra_valid = prefix_pos, pvalid

    key_pos, key_valid, index, n_written = key_layout(q_pos, q_valid, extra_pos, extra_valid,
                                                      cache)
    key_seg = q_seg
    if extra_pos is not None and segments is not None:
      key_seg = jnp.concatenate([prefix_seg, q_seg], axis=1)
    attn_mask = attention.causal_mask(q_pos, key_pos, key_valid, q_seg, key_seg)

    # A shared hidden prefix in prefix position has the same positions for every example:
    # project it once instead of per example.
    shared_hidden = form == "hidden" and not prefix.batched and prefix_at is None and cache is None
    last_pos = None
    if out_pos is not None:
      last_pos = out_pos
      if form == "prompt":  # rows carry the lp prompt slots first: skip them
        rows = out_pos // t
        last_pos = out_pos + (rows + 1) * lp
    new_keys, new_values = [], []
    for l, block in enumerate(self.blocks):
      extra_kv = _layer_kv(block, l, prefix, form, shared_hidden, prefix_pos, b)
      self.sow("intermediates", "layer_inputs", x)
      layer_cache = None if cache is None else (cache.keys[l], cache.values[l])
      select = last_pos if l == len(self.blocks) - 1 else None
      # Positional: nn.remat'd blocks take no keyword arguments.
      x, layer_cache = block(x, q_pos, attn_mask, extra_kv, layer_cache, index, select, None,
                             None, None, sub(delta, block.name))
      if layer_cache is not None:
        new_keys.append(layer_cache[0])
        new_values.append(layer_cache[1])

    x = self.final_norm_fn(x)
    if form == "prompt" and out_pos is None:
      x = x[:, lp:]
    out = x if return_hidden else self.unembed(x)
    if cache is None:
      return out
    return out, cache.advance(new_keys, new_values, key_pos, key_valid, n_written)

  def logits(self, hidden: Array) -> Array:
    """Unembeds final hidden states [..., H] -> [..., V] (for logits only where needed)."""
    return self.unembed(hidden)

  def prefix_to_kv(self, prefix: Prefix) -> Prefix:
    """Per-layer keys/values of a prefix (computed once per task and cached).

    kv prefixes pass through; hidden prefixes go through each layer's norm and W_k/W_v (and
    RoPE at positions 0..Lp-1, a true prefix). Prompts have no such form.
    """
    pos = jnp.arange(prefix.length)  # real slots come first (Prefix.mask)
    return prefix_to_kv(prefix, [lambda h, b=b: b.prefix_kv(h, pos) for b in self.blocks])
