"""Prefill and per-step calls of a decoder backbone over a KV cache, and beam reordering."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from prefix_jax.models.decoder import KVCache
from prefix_jax.prefixes.types import Prefix

Array = jax.Array


def prefill(model, backbone: dict, inputs: Array, mask: Array, prefix: Prefix | None,
            size: int) -> tuple[Array, KVCache]:
  """Runs the left-padded source [B, S] (and the prefix, once) into a fresh cache of `size`.

  The same `model.apply(prefix=...)` as in training: a kv/hidden prefix's keys/values are
  written into the first cache slots (once; later steps pass no prefix), a prompt prefix is
  part of the prefilled sequence. Returns the next-token logits [B, V] and the cache.
  """
  cache = KVCache.init(model.cfg, inputs.shape[0], size, dtype=model.dtype)
  logits, cache = model.apply({"params": backbone}, inputs, prefix=prefix, mask=mask,
                              cache=cache)
  # Left padding: the last column is every row's last real token.
  return logits[:, -1], cache


@functools.partial(jax.jit, static_argnums=0)
def prefix_kv(model, backbone: dict, prefix: Prefix) -> Prefix:
  """`model.prefix_to_kv` compiled (eager, every op of it would compile on its own)."""
  return model.apply({"params": backbone}, prefix, method=type(model).prefix_to_kv)


def step(model, backbone: dict, tokens: Array, cache: KVCache) -> tuple[Array, KVCache]:
  """Feeds one token per row, tokens [B] -> next-token logits [B, V] and the cache."""
  logits, cache = model.apply({"params": backbone}, tokens[:, None],
                              mask=jnp.ones((tokens.shape[0], 1), bool), cache=cache)
  return logits[:, 0], cache


def _rows(cache: KVCache, fn) -> KVCache:
  """Applies fn to the batch axis of every per-row array (not the shared `index`)."""
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
