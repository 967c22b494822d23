"""The one place where a prefix meets attention.

Every key and every query carries a *logical position* (an int) and every key a *valid* flag.
A causal attention mask is then simply

    mask[b, t, s] = key_valid[b, s] & (key_pos[b, s] <= query_pos[b, t])

This single rule covers all the cases the codebase needs:
  * prefix keys/values sit at positions `0 .. Lp-1`, real tokens start at `Lp` (as in the
    prefix-tuning paper's code and HF past_key_values): every real token sees the whole prefix;
  * an *infix* (prefix between source and target) sits at positions `src .. src+Lp-1`, so the
    source does not see it and the target does, whatever its physical place in the key axis;
  * padding (left or right) and unused prefix slots in a padded prefix bank are invalid keys;
  * a decoding KV cache is just keys with positions and valid flags, slots filled over time;
  * packed rows (several examples in one row) add *segment ids*: a query sees a key of its own
    segment, or a key of segment -1 (the prefix, shared by every example of the row).
Softmax is permutation invariant over keys, so the prefix keys can always be concatenated in
front of the token keys (or written into the first cache slots).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def causal_mask(query_pos: Array, key_pos: Array, key_valid: Array,
                query_seg: Array | None = None, key_seg: Array | None = None) -> Array:
  """Boolean mask [B, T, S] from query positions [B, T], key positions/valid [B, S], and
  optionally segment ids of packed rows (query [B, T], key [B, S]; -1 on prefix slots)."""
  mask = key_valid[:, None, :] & (key_pos[:, None, :] <= query_pos[:, :, None])
  if query_seg is not None:
    ks = key_seg[:, None, :]
    mask = mask & ((ks == query_seg[:, :, None]) | (ks < 0))
  return mask


def bidirectional_mask(query_pos: Array, key_valid: Array) -> Array:
  """Boolean mask [B, T, S]: every query sees every valid key."""
  return jnp.broadcast_to(key_valid[:, None, :], (*query_pos.shape, key_valid.shape[-1]))


def attend(q: Array, k: Array, v: Array, mask: Array) -> Array:
  """Scaled dot-product attention with grouped-query support.

  Args:
    q: [B, T, Hq, D] queries.
    k, v: [B, S, Hkv, D] keys/values; Hq must be a multiple of Hkv (GQA).
    mask: [B, T, S] boolean, True where a query may attend to a key.
  Returns:
    [B, T, Hq, D].
  """
  b, t, hq, d = q.shape
  hkv = k.shape[2]
  # Heads-major operands make both einsums plain batched matmuls (no transposes inside them,
  # forward or backward); docs/benchmarks.md has the comparison with the token-major layout.
  # The logits are scaled after the product, as HF does (scaling q first rounds differently).
  g = hq // hkv
  root_d = jnp.sqrt(d).astype(q.dtype)
  k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)          # [B, Hkv, S, D]
  if g == 1:  # multi-head: no group axis
    q = q.transpose(0, 2, 1, 3)                                    # [B, H, T, D]
    logits = (jnp.einsum("bhtd,bhsd->bhts", q, k) / root_d).astype(jnp.float32)
    m = mask[:, None]
  else:
    q = q.reshape(b, t, hkv, g, d).transpose(0, 2, 3, 1, 4)        # [B, Hkv, G, T, D]
    logits = (jnp.einsum("bkgtd,bksd->bkgts", q, k) / root_d).astype(jnp.float32)
    m = mask[:, None, None]
  # A large finite negative (not -inf) keeps rows with no valid key (padding queries) NaN-free.
  logits = jnp.where(m, logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  if g == 1:
    return jnp.einsum("bhts,bhsd->bthd", probs, v)
  out = jnp.einsum("bkgts,bksd->bkgtd", probs, v)                  # [B, Hkv, G, T, D]
  return out.transpose(0, 3, 1, 2, 4).reshape(b, t, hq, d)


def broadcast_batch(x: Array | None, batch: int, ndim_shared: int) -> Array | None:
  """Broadcasts a shared array ([...], `ndim_shared` dims) to per-example ([B, ...])."""
  if x is None:
    return None
  if x.ndim == ndim_shared:
    return jnp.broadcast_to(x[None], (batch, *x.shape))
  return x


# ---------------------------------------------------------------------------------------------
# Rotary position embeddings (HF "rotate half" layout).

def rope_cos_sin(positions: Array, head_dim: int, theta: float) -> tuple[Array, Array]:
  """cos, sin of shape [*positions.shape, head_dim] for integer positions."""
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  angles = positions.astype(jnp.float32)[..., None] * inv_freq
  angles = jnp.concatenate([angles, angles], axis=-1)
  return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: Array, positions: Array, theta: float) -> Array:
  """Rotates x [..., S, H, D] by positions [..., S] (rotate-half convention)."""
  d = x.shape[-1]
  cos, sin = rope_cos_sin(positions, d, theta)
  cos, sin = cos[..., None, :], sin[..., None, :]
  x1, x2 = x[..., : d // 2], x[..., d // 2:]
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  return (x.astype(jnp.float32) * cos + rotated.astype(jnp.float32) * sin).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Keys that come from outside the current tokens: prefix or cache.

def write_cache(cache_k: Array, cache_v: Array, k: Array, v: Array, index: Array):
  """Writes k, v [B, T, Hkv, D] into cache slots [index, index+T) of [B, S, Hkv, D]."""
  zero = jnp.zeros((), jnp.int32)
  idx = (zero, jnp.asarray(index, jnp.int32), zero, zero)
  cache_k = jax.lax.dynamic_update_slice(cache_k, k.astype(cache_k.dtype), idx)
  cache_v = jax.lax.dynamic_update_slice(cache_v, v.astype(cache_v.dtype), idx)
  return cache_k, cache_v


def gather_keys(k: Array, v: Array, *, extra_k: Array | None, extra_v: Array | None,
                layer_cache: tuple[Array, Array] | None, cache_index: Array | None):
  """Returns the key/value sequence a layer attends over and the updated layer cache.

  Keys are `[extra_k ; k]` (prefix in front of the tokens). With a cache they are written at
  `cache_index` and the whole cache (earlier slots included) is the key sequence.
  """
  if extra_k is not None:
    b = k.shape[0]
    k = jnp.concatenate([broadcast_batch(extra_k, b, 3).astype(k.dtype), k], axis=1)
    v = jnp.concatenate([broadcast_batch(extra_v, b, 3).astype(v.dtype), v], axis=1)
  if layer_cache is not None:
    ck, cv = write_cache(*layer_cache, k, v, cache_index)
    return ck, cv, (ck, cv)
  return k, v, None
