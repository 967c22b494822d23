"""What the three BART prefixes do, checked against hand-built references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import ModelConfig, build_model
from prefix_jax.models.bart import Bart
from prefix_jax.prefixes import Prefix, PrefixShapeError, pad_and_stack
from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
from test_bert_prefix import random_params

# 1 encoder layer, 2 decoder layers: a prefix sized for the wrong stack cannot slip through.
CFG = ModelConfig(arch="bart", vocab_size=61, hidden_size=32, num_layers=1, num_decoder_layers=2,
                  num_heads=4, intermediate_size=48, max_positions=24, activation="gelu",
                  tie_embeddings=True, decoder_start_token_id=2,
                  extra={"scale_embedding": True})
LAYERS = {"encoder": 1, "decoder": 2, "cross": 2}
LP = {"encoder": 3, "decoder": 2, "cross": 4}
# Tests reuse a few call signatures (shapes + pytree structure), each compiled once: prefixes
# are switched on and off through their masks rather than by changing their structure.


@pytest.fixture(scope="module")
def tiny():
  model = build_model(CFG)
  return model, random_params(model), jax.jit(model.apply)


def _data(b=2, s=6, t=5, seed=0):
  rng = np.random.RandomState(seed)
  return (jnp.asarray(rng.randint(3, CFG.vocab_size, (b, s))),
          jnp.asarray(rng.randint(3, CFG.vocab_size, (b, t))))


def _hidden(part, seed, lp=None):
  return jax.random.normal(jax.random.PRNGKey(seed),
                           (LAYERS[part], lp or LP[part], CFG.hidden_size))


def _kv(part, seed, lp=None, on=True):
  lp = lp or LP[part]
  shape = (LAYERS[part], lp, CFG.num_heads, CFG.head_dim)
  return Prefix(keys=jax.random.normal(jax.random.PRNGKey(seed), shape),
                values=jax.random.normal(jax.random.PRNGKey(seed + 1), shape),
                mask=jnp.full((lp,), on))


def _switch(prefix: Seq2SeqPrefix, **on) -> Seq2SeqPrefix:
  """The same prefix with the named parts' slots switched on/off (same compiled signature)."""
  return prefix.replace(**{p: getattr(prefix, p).replace(
      mask=jnp.full((getattr(prefix, p).length,), v)) for p, v in on.items()})


def _by_hand(params, part, hidden):
  """Keys/values of hidden prefix vectors through the frozen W_k, W_v they feed (numpy)."""
  stack, attn = {"encoder": ("encoder", "attn"), "decoder": ("decoder", "attn"),
                 "cross": ("decoder", "cross_attn")}[part]
  keys, values = [], []
  for l in range(LAYERS[part]):
    p = params[stack][f"layers_{l}"][attn]
    h = np.asarray(hidden[l], np.float64)
    proj = lambda n: (h @ np.asarray(p[n]["kernel"]) + np.asarray(p[n]["bias"])).reshape(
        h.shape[0], CFG.num_heads, CFG.head_dim)
    keys.append(proj("k_proj"))
    values.append(proj("v_proj"))
  return Prefix(keys=jnp.asarray(np.stack(keys), jnp.float32),
                values=jnp.asarray(np.stack(values), jnp.float32),
                mask=jnp.ones((hidden.shape[1],), bool))


def test_hidden_form_equals_kv_from_frozen_projections(tiny):
  model, params, run = tiny
  src, tgt = _data()
  hidden = Seq2SeqPrefix(**{p: Prefix(hidden=_hidden(p, seed=i)) for i, p in enumerate(LAYERS)})
  kv = Seq2SeqPrefix(**{p: _by_hand(params, p, getattr(hidden, p).hidden) for p in LAYERS})
  by_hidden = run({"params": params}, src, tgt, prefix=hidden)
  np.testing.assert_allclose(by_hidden, run({"params": params}, src, tgt, prefix=kv),
                             atol=1e-4, rtol=0)
  to_kv = jax.jit(functools.partial(model.apply, method=Bart.prefix_to_kv))
  cached = to_kv({"params": params}, hidden)
  for p in LAYERS:
    np.testing.assert_allclose(getattr(cached, p).keys, getattr(kv, p).keys, atol=1e-5, rtol=0)
    np.testing.assert_allclose(getattr(cached, p).values, getattr(kv, p).values, atol=1e-5,
                               rtol=0)
  # Each part matters on its own.
  off = run({"params": params}, src, tgt, prefix=_switch(kv, encoder=False, decoder=False,
                                                          cross=False))
  for p in LAYERS:
    alone = run({"params": params}, src, tgt,
                prefix=_switch(kv, **{q: q == p for q in LAYERS}))
    assert np.abs(np.asarray(alone - off)).max() > 1e-2, p


def test_zero_length_and_switched_off_parts_equal_no_prefix(tiny):
  _, params, run = tiny
  src, tgt = _data()
  # Zero-length parts are dropped (the plain backbone runs); switched-off slots are invisible.
  empty = Seq2SeqPrefix(encoder=Prefix(prompt=jnp.zeros((0, CFG.hidden_size))),
                        decoder=Prefix(hidden=jnp.zeros((2, 0, CFG.hidden_size))))
  plain = run({"params": params}, src, tgt, prefix=None)
  np.testing.assert_allclose(run({"params": params}, src, tgt, prefix=empty), plain, atol=1e-5,
                             rtol=0)
  off = Seq2SeqPrefix(**{p: _kv(p, 0, on=False) for p in LAYERS})
  np.testing.assert_allclose(run({"params": params}, src, tgt, prefix=off), plain, atol=1e-5,
                             rtol=0)


def test_cached_step_by_step_decoding_equals_full_decoding(tiny):
  model, params, run = tiny
  src, tgt = _data()
  prefix = Seq2SeqPrefix(**{p: _kv(p, seed=2 * i) for i, p in enumerate(LAYERS)})
  full = run({"params": params}, src, tgt, prefix=prefix)
  memory = jax.jit(functools.partial(model.apply, method=Bart.encode))(
      {"params": params}, src, prefix=prefix)
  decode = jax.jit(functools.partial(model.apply, method=Bart.decode))
  cache = Bart.init_cache(CFG, batch=2, size=LP["decoder"] + tgt.shape[1])
  # The decoder prefix is written into the cache on the first call; the cross prefix is
  # passed on every call.
  first, cache = decode({"params": params}, tgt[:, :2], memory, prefix=prefix, cache=cache)
  steps = [first]
  for i in range(2, tgt.shape[1]):
    out, cache = decode({"params": params}, tgt[:, i:i + 1], memory,
                        prefix=prefix.replace(decoder=None), cache=cache)
    steps.append(out)
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-4, rtol=0)
  longer = jnp.concatenate([tgt, tgt[:, :1]], axis=1)
  with pytest.raises(PrefixShapeError, match=r"2 \+ target length 6 exceeds the cache size 7"):
    decode({"params": params}, longer, memory, prefix=prefix, cache=cache)


def test_per_example_prefixes_equal_separate_runs(tiny):
  _, params, run = tiny
  src, tgt = _data()
  long = {p: _kv(p, seed=10 * i) for i, p in enumerate(LAYERS)}
  short = {p: _kv(p, seed=10 * i + 5, lp=LP[p] // 2) for i, p in enumerate(LAYERS)}
  banks = {p: pad_and_stack([long[p], short[p]]) for p in LAYERS}
  mixed = run({"params": params}, src, tgt, prefix=Seq2SeqPrefix(**banks).gather(
      jnp.asarray([0, 1])))
  for row, parts in ((0, long), (1, short)):
    out = run({"params": params}, src, tgt, prefix=Seq2SeqPrefix(**parts))
    np.testing.assert_allclose(mixed[row], out[row], atol=1e-4, rtol=0)


def test_padding_with_prefixes_equals_unpadded_run(tiny):
  _, params, run = tiny
  src, tgt = _data()
  prefix = Seq2SeqPrefix(
      encoder=Prefix(prompt=jax.random.normal(jax.random.PRNGKey(7), (3, CFG.hidden_size))),
      decoder=Prefix(hidden=_hidden("decoder", 8)), cross=_kv("cross", 9))
  src_mask = np.ones(src.shape, bool)
  src_mask[1, 4:] = False
  tgt_mask = np.ones(tgt.shape, bool)
  tgt_mask[1, 3:] = False
  out = run({"params": params}, src, tgt, prefix=prefix, src_mask=jnp.asarray(src_mask),
            tgt_mask=jnp.asarray(tgt_mask))
  alone = run({"params": params}, src[1:, :4], tgt[1:, :3], prefix=prefix)
  np.testing.assert_allclose(out[1, :3], alone[0], atol=1e-4, rtol=0)
  # Padded tokens are invisible on both sides.
  src2 = jnp.where(jnp.asarray(src_mask), src, 5)
  tgt2 = jnp.where(jnp.asarray(tgt_mask), tgt, 5)
  out2 = run({"params": params}, src2, tgt2, prefix=prefix, src_mask=jnp.asarray(src_mask),
             tgt_mask=jnp.asarray(tgt_mask))
  np.testing.assert_allclose(out2[1, :3], out[1, :3], atol=1e-5, rtol=0)


def test_bad_prefix_shapes_fail_with_one_line_errors(tiny):
  model, params, run = tiny
  src, tgt = _data()
  h = CFG.hidden_size
  cases = [
      (Seq2SeqPrefix(decoder=Prefix(hidden=jnp.zeros((1, 2, h)))),
       r"^decoder prefix: .*expected \(2, 2, 32\).*layers=2"),
      (Seq2SeqPrefix(encoder=Prefix(hidden=jnp.zeros((2, 2, h)))),
       r"^encoder prefix: .*expected \(1, 2, 32\).*layers=1"),
      (Seq2SeqPrefix(cross=Prefix(hidden=jnp.zeros((2, 2, 16)))),
       r"^cross prefix: .*expected \(2, 2, 32\).*hidden=32"),
      (Seq2SeqPrefix(cross=Prefix(keys=jnp.zeros((2, 2, 4, 4)), values=jnp.zeros((2, 2, 4, 4)))),
       r"^cross prefix: .*expected \(2, 2, 4, 8\)"),
      (Seq2SeqPrefix(encoder=Prefix(prompt=jnp.zeros((3, 2, h)))), "batch=2"),
      (Seq2SeqPrefix(decoder=Prefix(prompt=jnp.zeros((2, h)))),
       "decoder prefix cannot take the prompt form"),
      (Prefix(hidden=jnp.zeros((1, 2, h))), "takes a Seq2SeqPrefix"),
      (Seq2SeqPrefix(encoder=Prefix(prompt=jnp.zeros((19, h)))),
       r"19 \+ source length 6 = 25 exceeds the model's max_positions 24"),
      (Seq2SeqPrefix(decoder=Prefix(hidden=jnp.zeros((2, 20, h)))),
       r"20 \+ target length 5 = 25 exceeds the model's max_positions 24"),
  ]
  for prefix, msg in cases:
    with pytest.raises(PrefixShapeError, match=msg) as e:
      run({"params": params}, src, tgt, prefix=prefix)
    assert "\n" not in str(e.value)
  # A long cross prefix is fine: it takes no positions (traced only, not compiled).
  out = jax.eval_shape(lambda: model.apply({"params": params}, src, tgt,
                                           prefix=Seq2SeqPrefix(cross=_kv("cross", 0, lp=30))))
  assert out.shape == (2, 5, CFG.vocab_size)
