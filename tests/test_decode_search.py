"""Cached greedy / beam decoding against uncached full-sequence recomputation."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.decode import DecodeConfig, beam_search, greedy_search
from prefix_jax.prefixes import Prefix, PrefixSpec, fold_reparam, init_prefix, materialize
from prefix_jax.prefixes import pad_and_stack
from tiny import apply, tiny_model

ARCHS = ["llama", "gpt2"]
N_NEW = 6


def _batch(cfg, lengths=(6, 3, 4), seed=0):
  """Left-padded tokens [B, S] and mask [B, S] with the given source lengths."""
  rng = np.random.RandomState(seed)
  s = max(lengths)
  mask = np.stack([np.arange(s) >= s - n for n in lengths])
  # Padding slots hold random ids too: they must be invisible.
  return jnp.asarray(rng.randint(0, cfg.vocab_size, (len(lengths), s))), jnp.asarray(mask)


def _prefix(cfg, form, lp, seed, scale=1.0):
  k = jax.random.split(jax.random.PRNGKey(seed), 2)
  if form == "hidden":
    return Prefix(hidden=scale * jax.random.normal(k[0], (cfg.num_layers, lp, cfg.hidden_size)))
  if form == "prompt":
    return Prefix(prompt=scale * jax.random.normal(k[0], (lp, cfg.hidden_size)))
  shape = (cfg.num_layers, lp, cfg.num_kv_heads, cfg.head_dim)
  return Prefix(keys=scale * jax.random.normal(k[0], shape),
                values=scale * jax.random.normal(k[1], shape))


def _make_prefix(cfg, kind):
  if kind == "none":
    return None
  if kind.startswith("bank_"):
    form = kind[len("bank_"):]
    bank = pad_and_stack([_prefix(cfg, form, 4, seed=1), _prefix(cfg, form, 2, seed=2)])
    return bank.gather(jnp.asarray([1, 0, 1]))
  return _prefix(cfg, kind, 3, seed=3)


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, tokens, mask, prefix):
  return model.apply({"params": params}, tokens, prefix=prefix, mask=mask)


def _uncached_greedy(model, params, inputs, mask, prefix, n):
  """Reruns the whole sequence without a cache each step, argmax at the last real position.

  Slots not generated yet are right padding (mask False, invisible to every real token, as
  test_prefix_semantics checks), so one compiled shape [B, S + n] serves every step.
  """
  b, s = inputs.shape
  tokens = jnp.concatenate([inputs, jnp.zeros((b, n), inputs.dtype)], axis=1)
  m = jnp.concatenate([mask, jnp.zeros((b, n), bool)], axis=1)
  for i in range(n):
    logits = _apply(model, params, tokens, m, prefix)
    tokens = tokens.at[:, s + i].set(jnp.argmax(logits[:, s - 1 + i], axis=-1))
    m = m.at[:, s + i].set(True)
  return np.asarray(tokens[:, s:])


def _sequence_logprob(model, params, inputs, mask, prefix, out, eos_id=None):
  """Total log-probability [B] of out.tokens (up to and including any EOS), uncached."""
  b, s = inputs.shape
  n = out.tokens.shape[1]
  full = jnp.concatenate([inputs, out.tokens], axis=1)
  m = jnp.concatenate([mask, jnp.ones((b, n), bool)], axis=1)
  logits = _apply(model, params, full, m, prefix)
  logp = jax.nn.log_softmax(logits[:, s - 1:s - 1 + n], axis=-1)
  tok_logp = np.take_along_axis(np.asarray(logp), np.asarray(out.tokens)[..., None], -1)[..., 0]
  lengths = np.asarray(out.lengths)
  counted = lengths + (lengths < n if eos_id is not None else 0)
  return np.where(np.arange(n)[None] < counted[:, None], tok_logp, 0.0).sum(-1)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["none", "kv", "hidden", "prompt", "bank_hidden"])
def test_cached_greedy_equals_uncached_argmax(arch, kind):
  cfg, model, params = tiny_model(arch)
  inputs, mask = _batch(cfg)
  prefix = _make_prefix(cfg, kind)
  out = greedy_search(model, params, inputs, mask, prefix,
                      config=DecodeConfig(max_new_tokens=N_NEW))
  ref = _uncached_greedy(model, params, inputs, mask, prefix, N_NEW)
  np.testing.assert_array_equal(np.asarray(out.tokens), ref)
  np.testing.assert_array_equal(np.asarray(out.lengths), [N_NEW] * 3)
  np.testing.assert_allclose(out.logprobs,
                             _sequence_logprob(model, params, inputs, mask, prefix, out),
                             atol=1e-4, rtol=0)


def test_prefix_tuned_model_decodes_same_with_hidden_or_preconverted_kv():
  # llama: the hidden -> kv conversion applies RoPE at the prefix positions.
  cfg, model, params = tiny_model("llama")
  spec = PrefixSpec(method="hidden", length=3, reparam="mlp", mlp_hidden=16, init_std=1.0,
                    num_tasks=2)
  trained = init_prefix(spec, cfg, jax.random.PRNGKey(5))
  folded_spec, folded = fold_reparam(spec, cfg, trained)
  bank = materialize(folded_spec, cfg, folded)
  assert bank.form == "hidden"
  kv_bank = apply(model, {"params": params}, bank, method=type(model).prefix_to_kv)
  assert kv_bank.form == "kv"
  inputs, mask = _batch(cfg, seed=1)
  task = jnp.asarray([0, 1, 1])
  config = DecodeConfig(max_new_tokens=N_NEW)
  by_hidden = greedy_search(model, params, inputs, mask, bank.gather(task), config=config)
  by_kv = greedy_search(model, params, inputs, mask, kv_bank.gather(task), config=config)
  np.testing.assert_array_equal(np.asarray(by_hidden.tokens), np.asarray(by_kv.tokens))
  np.testing.assert_allclose(by_hidden.logprobs, by_kv.logprobs, atol=1e-5, rtol=0)
  # And both match the unfolded MLP prefix recomputed without a cache.
  ref = _uncached_greedy(model, params, inputs, mask, materialize(spec, cfg, trained).gather(task),
                         N_NEW)
  np.testing.assert_array_equal(np.asarray(by_hidden.tokens), ref)


def test_beam_of_one_equals_greedy():
  cfg, model, params = tiny_model("gpt2")
  inputs, mask = _batch(cfg)
  prefix = _make_prefix(cfg, "bank_kv")
  free = DecodeConfig(max_new_tokens=N_NEW)
  greedy = greedy_search(model, params, inputs, mask, prefix, config=free)
  row0 = [int(t) for t in greedy.tokens[0]]
  # EOS := row 0's first token not seen before it (past index 0): row 0 must stop there.
  stop = next(j for j in range(1, N_NEW) if row0[j] not in row0[:j])
  eos, banned = row0[stop], int(greedy.tokens[1, 0])
  assert banned not in row0[:stop + 1], "pick another seed: the banned id would move row 0"
  # With EOS, beam 1 is greedy when the score is the plain log-probability (alpha 0).
  for config in (free.replace(num_beams=1),
                 free.replace(num_beams=1, eos_id=eos, length_penalty=0.0, min_length=1,
                              banned_ids=(banned,))):
    g = greedy_search(model, params, inputs, mask, prefix, config=config)
    b = beam_search(model, params, inputs, mask, prefix, config=config)
    np.testing.assert_array_equal(np.asarray(b.tokens), np.asarray(g.tokens))
    np.testing.assert_array_equal(np.asarray(b.lengths), np.asarray(g.lengths))
    np.testing.assert_allclose(b.logprobs, g.logprobs, atol=1e-5, rtol=0)
  assert int(g.lengths[0]) == stop and int(g.tokens[0, stop]) == eos
  assert (np.asarray(g.tokens[0, stop + 1:]) == config.pad_id).all()
  assert int(g.tokens[1, 0]) != banned


@pytest.mark.parametrize("arch", ARCHS)
def test_beam_total_logprob_at_least_greedy(arch):
  """Sound setting: no EOS and two new tokens. Beam search keeps greedy's first token (the
  top-1 of step 0 is in any beam) and at step 1 ranks greedy's continuation among its
  candidates, so its best total log-probability cannot be below greedy's. (Over more steps
  beam search may prune the greedy path and end lower: not a bug, so not checked.)"""
  config = DecodeConfig(max_new_tokens=2)
  better = 0
  for seed in range(4):  # same shapes: one compilation serves every seed
    cfg, model, params = tiny_model(arch, seed=seed)
    inputs, mask = _batch(cfg, seed=seed)
    prefix = _make_prefix(cfg, "bank_hidden")
    greedy = greedy_search(model, params, inputs, mask, prefix, config=config)
    g = _sequence_logprob(model, params, inputs, mask, prefix, greedy)
    for beams in (3,):
      beam = beam_search(model, params, inputs, mask, prefix,
                         config=config.replace(num_beams=beams))
      lp = _sequence_logprob(model, params, inputs, mask, prefix, beam)
      np.testing.assert_allclose(beam.logprobs, lp, atol=1e-4, rtol=0)
      assert (lp >= g - 1e-5).all(), (seed, beams, lp, g)
      better += int((lp > g + 1e-4).sum())
  assert better > 0, "beam search never beat greedy: the check is vacuous"


def test_beam_logprobs_match_uncached_with_per_example_prefix_and_eos():
  """The cache is repeated and reordered per beam, per-example prefixes included."""
  cfg, model, params = tiny_model("gpt2", seed=3)
  inputs, mask = _batch(cfg, seed=4)
  prefix = _make_prefix(cfg, "bank_prompt")
  greedy = greedy_search(model, params, inputs, mask, prefix,
                         config=DecodeConfig(max_new_tokens=N_NEW))
  config = DecodeConfig(max_new_tokens=N_NEW, num_beams=3, eos_id=int(greedy.tokens[1, 1]),
                        length_penalty=0.6, length_penalty_style="gnmt")
  out = beam_search(model, params, inputs, mask, prefix, config=config)
  lp = _sequence_logprob(model, params, inputs, mask, prefix, out, eos_id=config.eos_id)
  np.testing.assert_allclose(out.logprobs, lp, atol=1e-4, rtol=0)
  n_eos = np.asarray(out.lengths) + (np.asarray(out.lengths) < N_NEW)
  pen = ((5.0 + n_eos) / 6.0) ** 0.6
  np.testing.assert_allclose(out.scores, lp / pen, atol=1e-4, rtol=0)
