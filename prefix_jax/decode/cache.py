"""Prefill and per-step calls over a KV cache, and beam reordering.

Decoder-only LMs keep a `KVCache`. An encoder-decoder (BART) keeps a `Seq2SeqState`: the
decoder's self-attention cache, the encoder memory, and the cross-attention prefix (every
leaf but the cache index has a leading batch axis, so beams repeat and reorder rows alike).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from flax import struct

from prefix_jax.models.decoder import KVCache
from prefix_jax.models.deltas import Delta
from prefix_jax.prefixes.types import Prefix

Array = jax.Array


@struct.dataclass
class Seq2SeqState:
  cache: KVCache
  memory: object          # bart.Memory: hidden [B, S', H], mask [B, S']
  cross: Prefix | None    # cross-attention prefix, per example [B, ...]


def is_seq2seq(model) -> bool:
  return hasattr(model, "encode") and hasattr(model, "decode")


def _per_example(prefix: Prefix | None, b: int) -> Prefix | None:
  if prefix is None or prefix.batched:
    return prefix
  rows = lambda x: jnp.broadcast_to(x[None], (b, *x.shape))
  return Prefix(hidden=None if prefix.hidden is None else rows(prefix.hidden),
                keys=None if prefix.keys is None else rows(prefix.keys),
                values=None if prefix.values is None else rows(prefix.values),
                mask=prefix.valid(b))


def _prefill_seq2seq(model, backbone, inputs, mask, prefix, size, delta):
  """Encodes the source once (encoder prefix), then feeds the decoder start token with the
  decoder prefix written into the cache; the cross prefix is kept for every step. `delta`
  acts in the encoder here and in the decoder at every step."""
  from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
  cls, variables, b = type(model), {"params": backbone}, inputs.shape[0]
  memory = model.apply(variables, inputs, prefix=prefix, src_mask=mask, delta=delta,
                       method=cls.encode)
  cache = cls.init_cache(model.cfg, b, size, dtype=model.dtype)
  start = jnp.full((b, 1), model.cfg.decoder_start_token_id, jnp.int32)
  cross = None if prefix is None else _per_example(prefix.cross, b)
  first = None if prefix is None else Seq2SeqPrefix(decoder=prefix.decoder, cross=cross)
  logits, cache = model.apply(variables, start, memory, prefix=first, cache=cache,
                              delta=delta, method=cls.decode)
  return logits[:, -1], Seq2SeqState(cache=cache, memory=memory, cross=cross)


def infix_at(inputs: Array, infix: bool) -> Array | None:
  """`prefix_at` [B] of an infix after the whole left-padded prompt [B, S] (None: a prefix)."""
  return jnp.full((inputs.shape[0],), inputs.shape[1], jnp.int32) if infix else None


def prefill(model, backbone: dict, inputs: Array, mask: Array, prefix: Prefix | None,
            size: int, prefix_at: Array | None = None,
            delta: Delta | None = None) -> tuple[Array, KVCache]:
  """Runs the left-padded source [B, S] (and the prefix, once) into a fresh cache of `size`.

  The same `model.apply(prefix=...)` as in training: a kv/hidden prefix's keys/values are
  written into the first cache slots (once; later steps pass no prefix), a prompt prefix is
  part of the prefilled sequence. `prefix_at` [B] places an infix (see `infix_at`): after the
  prompt, so the prompt does not see it and every generated token does, as in training.
  `delta`: a method's added parameters (`models.deltas.Delta`: unmerged LoRA, adapters,
  LLaMA-Adapter), the same tree at prefill and at every `step`; None: the plain backbone.
  Returns the next-token logits [B, V] and the cache.
  """
  if is_seq2seq(model):
    if prefix_at is not None:
      raise ValueError("an encoder-decoder takes no infix")
    return _prefill_seq2seq(model, backbone, inputs, mask, prefix, size, delta)
  cache = KVCache.init(model.cfg, inputs.shape[0], size, dtype=model.dtype)
  logits, cache = model.apply({"params": backbone}, inputs, prefix=prefix, mask=mask,
                              prefix_at=prefix_at, cache=cache, delta=delta)
  # Left padding: the last column is every row's last real token.
  return logits[:, -1], cache


@functools.partial(jax.jit, static_argnums=0)
def prefix_kv(model, backbone: dict, prefix: Prefix) -> Prefix:
  """`model.prefix_to_kv` compiled (eager, every op of it would compile on its own)."""
  return model.apply({"params": backbone}, prefix, method=type(model).prefix_to_kv)


def step(model, backbone: dict, tokens: Array, cache, delta: Delta | None = None):
  """Feeds one token per row, tokens [B] -> next-token logits [B, V] and the cache/state
  (`delta` as in `prefill`)."""
  if isinstance(cache, Seq2SeqState):
    from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
    state = cache
    prefix = None if state.cross is None else Seq2SeqPrefix(cross=state.cross)
    logits, new = model.apply({"params": backbone}, tokens[:, None], state.memory, prefix=prefix,
                              cache=state.cache, delta=delta, method=type(model).decode)
    return logits[:, 0], state.replace(cache=new)
  logits, cache = model.apply({"params": backbone}, tokens[:, None],
                              mask=jnp.ones((tokens.shape[0], 1), bool), cache=cache,
                              delta=delta)
  return logits[:, 0], cache


def _rows(cache, fn):
  """Applies fn to the batch axis of every per-row array (not the shared `index`)."""
  if isinstance(cache, Seq2SeqState):
    return cache.replace(cache=_rows(cache.cache, fn),
                         memory=jax.tree_util.tree_map(fn, cache.memory),
                         cross=jax.tree_util.tree_map(fn, cache.cross))
  return cache.replace(keys=tuple(fn(k) for k in cache.keys),
                       values=tuple(fn(v) for v in cache.values),
                       pos=fn(cache.pos), valid=fn(cache.valid))


def repeat_beams(cache: KVCache, beams: int) -> KVCache:
  """[B, ...] rows -> [B * beams, ...], example-major (row b * beams + k)."""
  return _rows(cache, lambda x: jnp.repeat(x, beams, axis=0))


def gather_beams(cache: KVCache, beam_idx: Array) -> KVCache:
  """Reorders [B * K, ...] rows so row b * K + k holds the old row b * K + beam_idx[b, k]."""
  b, k = beam_idx.shape
  flat = (jnp.arange(b)[:, None] * k + beam_idx).reshape(-1)
  return _rows(cache, lambda x: jnp.take(x, flat, axis=0))
