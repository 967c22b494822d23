"""Greedy decoding with a KV cache: one prefill, then one token per step in a while_loop."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from prefix_jax.decode import cache as kv
from prefix_jax.decode.config import DecodeConfig
from prefix_jax.decode.output import DecodeOutput
from prefix_jax.decode.processors import Rules, constrain, prepare_request
from prefix_jax.models.deltas import Delta
from prefix_jax.prefixes.types import Prefix

Array = jax.Array


def greedy_search(model, backbone: dict, inputs: Array, mask: Array | None = None,
                  prefix: Prefix | None = None, *, config: DecodeConfig,
                  infix: bool = False, delta: Delta | None = None) -> DecodeOutput:
  """Greedy decoding of a left-padded batch.

  Args:
    model: a `DecoderLM` (its cfg is static).
    backbone: frozen params.
    inputs: [B, S] int token ids, left-padded.
    mask: [B, S] bool, False on padding; default all True.
    prefix: a materialized `Prefix` (any form, shared or per-example [B, ...]) or None.
    config: a `DecodeConfig`; `num_beams` is ignored.
    infix: the prefix sits between the prompt and the generated tokens (an infix trained
      before the target, `prefix_at` = the source length), not before the prompt.
    delta: a method's added parameters (`models.deltas.Delta`: unmerged LoRA, adapters,
      LLaMA-Adapter) acting at prefill and every step; a traced argument of the compiled
      search (a new tree of the same shapes does not recompile). None: the plain backbone.
  Returns:
    `DecodeOutput` with tokens [B, max_new_tokens].
  """
  inputs, mask, rules, size = prepare_request(model, config, inputs, mask, prefix)
  return _greedy(model, backbone, inputs, mask, prefix, rules, kv.infix_at(inputs, infix),
                 delta, n=config.max_new_tokens, size=size)


@functools.partial(jax.jit, static_argnames=("model", "n", "size"))
def _greedy(model, backbone, inputs, mask, prefix, rules: Rules, prefix_at, delta, *, n: int,
            size: int):
  b = inputs.shape[0]
  logits, cache = kv.prefill(model, backbone, inputs, mask, prefix, size, prefix_at, delta)

  def choose(state, logits, t):
    tokens, lengths, logprobs, done = state
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    tok = jnp.argmax(constrain(logp, t, rules, tokens), axis=-1).astype(jnp.int32)
    tok_logp = jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0]
    tok = jnp.where(done, rules.pad_id, tok)
    is_eos = rules.is_eos(tok)
    tokens = tokens.at[:, t].set(tok)
    logprobs = logprobs + jnp.where(done, 0.0, tok_logp)
    lengths = lengths + (~done & ~is_eos)
    return (tokens, lengths, logprobs, done | is_eos), tok

  state = (jnp.full((b, n), rules.pad_id, jnp.int32), jnp.zeros((b,), jnp.int32),
           jnp.zeros((b,), jnp.float32), jnp.zeros((b,), bool))
  state, tok = choose(state, logits, 0)

  def cond(carry):
    t, state, _, _ = carry
    return (t < n) & ~jnp.all(state[3])

  def body(carry):
    t, state, tok, cache = carry
    logits, cache = kv.step(model, backbone, tok, cache, delta)
    state, tok = choose(state, logits, t)
    return t + 1, state, tok, cache

  _, state, _, _ = jax.lax.while_loop(cond, body, (jnp.asarray(1, jnp.int32), state, tok, cache))
  tokens, lengths, logprobs, _ = state
  return DecodeOutput(tokens=tokens, lengths=lengths, logprobs=logprobs, scores=logprobs)
