"""Per-step constraints on the next-token distribution, and the beam length penalty.

The constraint settings travel as traced arrays (`Rules`), so decoding with another EOS id,
min length, banned list or penalty reuses the compiled loop; only the shapes (batch, source,
`max_new_tokens`, `num_beams`) are static.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prefix_jax.decode.config import DecodeConfig

Array = jax.Array


@struct.dataclass
class Rules:
  """The traced side of a `DecodeConfig`.

  eos_id, pad_id, min_length: int32 scalars (eos_id -1: no EOS); banned: [V] bool;
  length_penalty: float32 alpha; gnmt: bool, the penalty style; ngram: the static
  no-repeat n-gram size (0: off).
  """
  eos_id: Array
  pad_id: Array
  min_length: Array
  banned: Array
  length_penalty: Array
  gnmt: Array
  ngram: int = struct.field(pytree_node=False, default=0)

  @classmethod
  def of(cls, config: DecodeConfig, vocab_size: int) -> "Rules":
    banned = np.zeros(vocab_size, bool)
    banned[list(config.banned_ids)] = True
    eos = -1 if config.eos_id is None else config.eos_id
    return cls(eos_id=jnp.int32(eos), pad_id=jnp.int32(config.pad_id),
               min_length=jnp.int32(config.min_length), banned=jnp.asarray(banned),
               length_penalty=jnp.float32(config.length_penalty),
               gnmt=jnp.asarray(config.length_penalty_style == "gnmt"),
               ngram=config.no_repeat_ngram_size)

  def is_eos(self, tokens: Array) -> Array:
    return tokens == self.eos_id


def repeated_ngram_ids(seq: Array, step: Array, size: int, vocab: int) -> Array:
  """[..., V] bool: the tokens that would repeat an n-gram (n = `size`) of the generated
  tokens seq[..., :step] (seq [..., N]; slots from `step` on are ignored)."""
  n = seq.shape[-1]
  lead = seq.shape[:-1]
  if n < size:
    return jnp.zeros((*lead, vocab), bool)
  j = n - size + 1  # n-grams seq[i:i + size] of the whole buffer, i < j
  grams = jnp.stack([seq[..., i:i + j] for i in range(size)], -1)  # [..., J, size]
  tail = jnp.take(seq, jnp.clip(step - size + 1 + jnp.arange(size - 1), 0, n - 1), axis=-1)
  match = jnp.all(grams[..., :size - 1] == tail[..., None, :], -1)
  done = (jnp.arange(j) + size - 1 < step) & (step >= size - 1)  # fully generated n-grams
  rows = int(np.prod(lead)) if lead else 1
  hits = jnp.zeros((rows, vocab), jnp.int32).at[
      jnp.arange(rows)[:, None], grams[..., size - 1].reshape(rows, j)].add(
          (match & done).reshape(rows, j).astype(jnp.int32))
  return hits.reshape(*lead, vocab) > 0


def constrain(logp: Array, step: Array, rules: Rules, seq: Array | None = None) -> Array:
  """Sets banned ids, EOS while `step < min_length`, and (with `rules.ngram` and the tokens
  generated so far, seq [..., N]) repeated n-grams, to -inf in logp [..., V].

  Applied to log-probabilities (after the softmax, as HF does): the allowed tokens keep
  their model probabilities, they are not renormalized.
  """
  vocab = jnp.arange(logp.shape[-1])
  off = rules.banned | ((vocab == rules.eos_id) & (step < rules.min_length))
  if rules.ngram and seq is not None:
    off = off | repeated_ngram_ids(seq, step, rules.ngram, logp.shape[-1])
  return jnp.where(off, -jnp.inf, logp)


def length_penalty(length: Array, rules: Rules) -> Array:
  """The divisor of a hypothesis' log-probability; `length` counts tokens incl. EOS."""
  length = jnp.asarray(length, jnp.float32)
  base = jnp.where(rules.gnmt, (5.0 + length) / 6.0, length)
  return base ** rules.length_penalty


def prepare_request(model, config: DecodeConfig, inputs, mask, prefix):
  """Validates a decode request (one-line errors before compiling) and returns
  (inputs int32 [B, S], mask bool [B, S], rules, cache size)."""
  from prefix_jax.decode.cache import is_seq2seq
  from prefix_jax.decode.config import check_request, check_seq2seq_request
  check = check_seq2seq_request if is_seq2seq(model) else check_request
  size = check(model.cfg, config, inputs.shape, prefix, None if mask is None else mask.shape)
  inputs = jnp.asarray(inputs, jnp.int32)
  mask = jnp.ones(inputs.shape, bool) if mask is None else jnp.asarray(mask, bool)
  return inputs, mask, Rules.of(config, model.cfg.vocab_size), size
