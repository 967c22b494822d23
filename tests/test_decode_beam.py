"""Beam search against exhaustive search, and its constraints (min length, banned ids)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.decode import DecodeConfig, beam_search, greedy_search
from prefix_jax.models import ModelConfig, build_model
from prefix_jax.prefixes import Prefix
from tiny import tiny_model

V, N = 8, 3  # vocabulary and new tokens small enough to enumerate all V**N continuations


def _micro_model(seed=0):
  """A llama with 8 tokens, weights scaled up for clear, tie-free logits (but not so peaked
  that greedy search finds the optimum)."""
  cfg = ModelConfig(arch="llama", vocab_size=V, hidden_size=16, num_layers=2, num_heads=2,
                    num_kv_heads=1, intermediate_size=32, max_positions=32)
  model = build_model(cfg)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]
  params = jax.tree_util.tree_map_with_path(
      lambda p, x: x if "scale" in jax.tree_util.keystr(p) else 5.0 * x, params)
  return cfg, model, params


def _exhaustive(model, params, inputs, mask, prefix, config):
  """Best complete hypothesis per row by enumerating every continuation of N tokens:
  (tokens [N] up to the EOS, score) under the same scoring and constraints."""
  b, s = inputs.shape
  conts = np.array(list(itertools.product(range(V), repeat=N)))  # [V**N, N]
  m = len(conts)
  full = np.concatenate([np.repeat(np.asarray(inputs), m, 0), np.tile(conts, (b, 1))], 1)
  fmask = np.concatenate([np.repeat(np.asarray(mask), m, 0), np.ones((b * m, N), bool)], 1)
  if prefix is not None and prefix.batched:
    prefix = jax.tree_util.tree_map(lambda x: jnp.repeat(x, m, axis=0), prefix)
  apply = jax.jit(lambda p, t, m, pre: model.apply({"params": p}, t, prefix=pre, mask=m))
  logits = apply(params, jnp.asarray(full), jnp.asarray(fmask), prefix)
  logp = np.asarray(jax.nn.log_softmax(logits[:, s - 1:s - 1 + N], -1), np.float64)
  tok_logp = np.take_along_axis(logp, np.tile(conts, (b, 1))[..., None], -1)[..., 0]
  tok_logp = tok_logp.reshape(b, m, N)

  def penalty(n):
    if config.length_penalty_style == "gnmt":
      return ((5.0 + n) / 6.0) ** config.length_penalty
    return float(n) ** config.length_penalty

  best = []
  for row in range(b):
    cands = {}
    for c, seq in enumerate(conts):
      end = next((j + 1 for j, t in enumerate(seq) if t == config.eos_id), N)
      kept = tuple(seq[:end])
      if any(t in config.banned_ids for t in kept):
        continue
      if config.eos_id in kept and end - 1 < config.min_length:
        continue
      cands[kept] = tok_logp[row, c, :end].sum() / penalty(end)
    best.append(max(cands.items(), key=lambda kv: kv[1]))
  return best


@pytest.mark.parametrize("config", [
    DecodeConfig(max_new_tokens=N, num_beams=256, eos_id=3, banned_ids=(5,), min_length=1),
    DecodeConfig(max_new_tokens=N, num_beams=256, eos_id=1, banned_ids=(6,), min_length=0,
                 length_penalty=-0.7, length_penalty_style="gnmt"),
], ids=["hf", "gnmt"])
def test_wide_beam_equals_exhaustive_search(config):
  """With K at least the number of live candidates (7 * 6 * 6 = 252 <= 256 here), beam
  search keeps every hypothesis: it must return the exhaustive optimum, EOS, min length,
  banned ids and length penalty included."""
  cfg, model, params = _micro_model()
  inputs = jnp.asarray([[2, 7, 4, 1], [0, 0, 6, 2]])
  mask = jnp.asarray([[1, 1, 1, 1], [0, 0, 1, 1]], bool)
  prefix = Prefix(keys=jax.random.normal(jax.random.PRNGKey(1), (2, 2, 3, 1, 8)),
                  values=jax.random.normal(jax.random.PRNGKey(2), (2, 2, 3, 1, 8)),
                  mask=jnp.asarray([[1, 1, 1], [1, 0, 0]], bool))
  out = beam_search(model, params, inputs, mask, prefix, config=config)
  best = _exhaustive(model, params, inputs, mask, prefix, config)
  for row, (seq, score) in enumerate(best):
    n = len(seq) - (seq[-1] == config.eos_id)
    assert int(out.lengths[row]) == n, (row, seq, out)
    np.testing.assert_array_equal(np.asarray(out.tokens[row, :len(seq)]), seq)
    assert (np.asarray(out.tokens[row, len(seq):]) == config.pad_id).all()
    np.testing.assert_allclose(float(out.scores[row]), score, atol=1e-4, rtol=0)
  # The problem is not trivial: greedy search misses the optimum on some row.
  greedy = greedy_search(model, params, inputs, mask, prefix, config=config)
  assert any(tuple(np.asarray(greedy.tokens[row, :len(seq)])) != seq
             for row, (seq, _) in enumerate(best))


def test_min_length_and_banned_ids_are_respected():
  cfg, model, params = tiny_model("llama", seed=1)
  inputs = jnp.asarray(np.random.RandomState(2).randint(0, cfg.vocab_size, (2, 5)))
  mask = jnp.asarray([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], bool)
  free = DecodeConfig(max_new_tokens=8, num_beams=3, length_penalty=0.0)
  base = beam_search(model, params, inputs, mask, config=free)
  eos = int(base.tokens[0, 0])  # unconstrained, row 0 would stop at once
  banned = tuple(sorted({int(t) for t in np.asarray(base.tokens[:, 1:4]).ravel()} - {eos}))
  stopped = beam_search(model, params, inputs, mask, config=free.replace(eos_id=eos))
  assert int(stopped.lengths[0]) == 0 and int(stopped.tokens[0, 0]) == eos
  config = free.replace(eos_id=eos, min_length=4, banned_ids=banned)
  for search in (beam_search, greedy_search):
    out = search(model, params, inputs, mask, config=config)
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    assert (lengths >= 4).all(), (search.__name__, lengths)
    for row in range(2):
      text = tokens[row, :lengths[row]]
      assert eos not in text and not set(text.tolist()) & set(banned), (search.__name__, text)
      if lengths[row] < config.max_new_tokens:
        assert tokens[row, lengths[row]] == eos
