"""Beam search with a KV cache (vectorized over the batch, compiled once per shape).

Each step scores the K alive hypotheses' K * V extensions and keeps the top 2K candidates
(at most K of them end in EOS, so at least K do not). As in HF, a candidate ending in EOS
among the top K joins the pool of K finished hypotheses, ranked by the length-penalized
score (`DecodeConfig`; `len` includes the EOS, as in HF >= 4.50); the best K candidates not
ending in EOS stay alive and the cache rows are reordered to follow them. When
`max_new_tokens` is reached the alive hypotheses compete with the finished ones.

A row stops early only when its K finished scores all beat every score an alive hypothesis
could still reach (log-probabilities only decrease, so the bound is exact): stopping never
changes the result, unlike HF's default heuristic (`early_stopping=False`), which may stop
sooner. With one beam this is greedy search when there is no EOS or `length_penalty == 0`
(otherwise a longer hypothesis may outscore the one greedy stopped at).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from prefix_jax.decode import cache as kv
from prefix_jax.decode.config import DecodeConfig
from prefix_jax.decode.output import DecodeOutput
from prefix_jax.decode.processors import Rules, constrain, length_penalty, prepare_request
from prefix_jax.models.deltas import Delta
from prefix_jax.prefixes.types import Prefix

Array = jax.Array


def beam_search(model, backbone: dict, inputs: Array, mask: Array | None = None,
                prefix: Prefix | None = None, *, config: DecodeConfig,
                infix: bool = False, delta: Delta | None = None) -> DecodeOutput:
  """Beam search of width `config.num_beams` over a left-padded batch.

  Args: as `greedy_search`. The prefix (shared or per-example) is prefilled once per
  example; the cache is then repeated per beam (B -> B * num_beams rows).
  Returns:
    `DecodeOutput` of the best hypothesis per example: tokens [B, max_new_tokens]; `scores`
    are length-penalized (see `DecodeConfig`), `logprobs` are not.
  """
  inputs, mask, rules, size = prepare_request(model, config, inputs, mask, prefix)
  return _beam(model, backbone, inputs, mask, prefix, rules, kv.infix_at(inputs, infix), delta,
               k=config.num_beams, n=config.max_new_tokens, size=size)


def _top(scores: Array, k: int, *arrays: Array):
  """The top-k of scores [B, M] and the matching entries of arrays [B, M, ...]."""
  vals, idx = jax.lax.top_k(scores, k)
  picked = [jnp.take_along_axis(a, idx.reshape(idx.shape + (1,) * (a.ndim - 2)), axis=1)
            for a in arrays]
  return vals, idx, picked


@functools.partial(jax.jit, static_argnames=("model", "k", "n", "size"))
def _beam(model, backbone, inputs, mask, prefix, rules: Rules, prefix_at, delta, *, k: int,
          n: int, size: int):
  b = inputs.shape[0]
  logits, cache = kv.prefill(model, backbone, inputs, mask, prefix, size, prefix_at, delta)
  v = logits.shape[-1]
  cache = kv.repeat_beams(cache, k)
  logits = jnp.repeat(logits, k, axis=0)
  neg = jnp.float32(-jnp.inf)

  # Every beam starts as the same empty hypothesis: only beam 0 may extend at step 0.
  alive = dict(seq=jnp.full((b, k, n), rules.pad_id, jnp.int32),
               logp=jnp.where(jnp.arange(k) == 0, 0.0, neg)[None].repeat(b, 0))
  fin = dict(seq=jnp.full((b, k, n), rules.pad_id, jnp.int32), logp=jnp.full((b, k), neg),
             score=jnp.full((b, k), neg), length=jnp.zeros((b, k), jnp.int32))

  def advance(alive, fin, cache, logits, t):
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(b, k, v)
    cand = (alive["logp"][:, :, None] + constrain(logp, t, rules, alive["seq"])).reshape(
        b, k * v)
    top_logp, top_idx = jax.lax.top_k(cand, 2 * k)
    beam, tok = top_idx // v, (top_idx % v).astype(jnp.int32)
    seq = jnp.take_along_axis(alive["seq"], beam[:, :, None], axis=1).at[:, :, t].set(tok)
    is_eos = rules.is_eos(tok)

    # Finished pool: the old K plus this step's EOS candidates ranked in the top K, best K kept.
    in_top = jnp.arange(2 * k) < k
    eos_score = jnp.where(is_eos & in_top, top_logp / length_penalty(t + 1, rules), neg)
    f_score, _, (f_seq, f_logp, f_len) = _top(
        jnp.concatenate([fin["score"], eos_score], 1), k,
        jnp.concatenate([fin["seq"], seq], 1), jnp.concatenate([fin["logp"], top_logp], 1),
        jnp.concatenate([fin["length"], jnp.full_like(tok, t)], 1))
    fin = dict(seq=f_seq, logp=f_logp, score=f_score, length=f_len)

    # Alive: the best K candidates that did not end.
    a_logp, _, (a_seq, a_beam) = _top(jnp.where(is_eos, neg, top_logp), k, seq, beam)
    alive = dict(seq=a_seq, logp=a_logp)
    cache = kv.gather_beams(cache, a_beam)

    # Best score any alive hypothesis can still reach: logp only falls, so at the length
    # (t + 2 .. n) where the penalty helps most.
    reach = jnp.maximum(a_logp / length_penalty(t + 2, rules),
                        a_logp / length_penalty(n, rules))
    done = fin["score"][:, -1] >= jnp.max(reach, axis=1)
    return alive, fin, cache, done

  alive, fin, cache, done = advance(alive, fin, cache, logits, 0)

  def cond(carry):
    t, _, _, _, done = carry
    return (t < n) & ~jnp.all(done)

  def body(carry):
    t, alive, fin, cache, _ = carry
    logits, cache = kv.step(model, backbone, alive["seq"][:, :, t - 1].reshape(-1), cache,
                            delta)
    alive, fin, cache, done = advance(alive, fin, cache, logits, t)
    return t + 1, alive, fin, cache, done

  t, alive, fin, _, _ = jax.lax.while_loop(
      cond, body, (jnp.asarray(1, jnp.int32), alive, fin, cache, done))

  # Alive hypotheses are complete only if they reached max_new_tokens.
  a_score = jnp.where(t == n, alive["logp"] / length_penalty(n, rules), neg)
  score, _, (seq, logp, length) = _top(
      jnp.concatenate([fin["score"], a_score], 1), 1,
      jnp.concatenate([fin["seq"], alive["seq"]], 1),
      jnp.concatenate([fin["logp"], alive["logp"]], 1),
      jnp.concatenate([fin["length"], jnp.full((b, k), n, jnp.int32)], 1))
  return DecodeOutput(tokens=seq[:, 0], lengths=length[:, 0], logprobs=logp[:, 0],
                      scores=score[:, 0])
