"""What a prefix does to the BERT encoder, checked against hand-built references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import ModelConfig, build_model
from prefix_jax.models import bert
from prefix_jax.prefixes import Prefix, PrefixShapeError, PrefixSpec, init_prefix, pad_and_stack

CFG = ModelConfig(arch="bert", vocab_size=61, hidden_size=32, num_layers=2, num_heads=4,
                  intermediate_size=48, max_positions=24, norm_eps=1e-12, activation="gelu",
                  type_vocab_size=2, num_labels=3)


def random_params(model, seed=0):
  """Random params of model's shapes (norm scales around 1, biases non-zero); no compilation."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32)))
  rng = np.random.RandomState(seed)

  def draw(path, x):
    name = jax.tree_util.keystr(path)
    noise = 0.1 * rng.randn(*x.shape).astype(np.float32)
    return jnp.asarray(noise + 1.0 if "scale" in name else noise)
  return jax.tree_util.tree_map_with_path(draw, shapes["params"])


@pytest.fixture(scope="module")
def tiny():
  """(model, params, jitted apply). Each call signature (shapes + pytree structure) compiles
  once, so the tests reuse a few of them."""
  model = build_model(CFG)
  return model, random_params(model), jax.jit(model.apply)


def _tokens(shape=(2, 7), seed=0):
  return jnp.asarray(np.random.RandomState(seed).randint(0, CFG.vocab_size, shape))


def _hidden(lp, seed=1, batch=None):
  shape = (CFG.num_layers, lp, CFG.hidden_size) if batch is None else (
      batch, CFG.num_layers, lp, CFG.hidden_size)
  return jax.random.normal(jax.random.PRNGKey(seed), shape)


def _kv(lp, seed=2):
  shape = (CFG.num_layers, lp, CFG.num_heads, CFG.head_dim)
  return Prefix(keys=jax.random.normal(jax.random.PRNGKey(seed), shape),
                values=jax.random.normal(jax.random.PRNGKey(seed + 1), shape))


def _run(tiny, tokens, **kw):
  _, params, run = tiny
  return run({"params": params}, tokens, **kw)


def test_hidden_form_equals_kv_from_frozen_projections(tiny):
  model, params, _ = tiny
  tokens = _tokens()
  hidden = _hidden(lp=4)
  keys, values = [], []
  for l in range(CFG.num_layers):  # post-LN: W_k h + b_k, no norm in front
    attn = params[f"layers_{l}"]["attn"]
    h = np.asarray(hidden[l], np.float64)
    proj = lambda n: (h @ np.asarray(attn[n]["kernel"]) + np.asarray(attn[n]["bias"])).reshape(
        4, CFG.num_heads, CFG.head_dim)
    keys.append(proj("k_proj"))
    values.append(proj("v_proj"))
  kv = Prefix(keys=jnp.asarray(np.stack(keys), jnp.float32),
              values=jnp.asarray(np.stack(values), jnp.float32))
  by_hidden = _run(tiny, tokens, prefix=Prefix(hidden=hidden))
  by_kv = _run(tiny, tokens, prefix=kv)
  np.testing.assert_allclose(by_hidden.hidden, by_kv.hidden, atol=1e-5, rtol=0)
  np.testing.assert_allclose(by_hidden.logits, by_kv.logits, atol=1e-5, rtol=0)
  to_kv = jax.jit(functools.partial(model.apply, method=type(model).prefix_to_kv))
  cached = to_kv({"params": params}, Prefix(hidden=hidden))
  np.testing.assert_allclose(cached.keys, kv.keys, atol=1e-5, rtol=0)
  np.testing.assert_allclose(cached.values, kv.values, atol=1e-5, rtol=0)
  # The prefix matters.
  plain = _run(tiny, tokens)
  assert np.abs(np.asarray(plain.hidden - by_kv.hidden)).max() > 1e-2


def test_every_token_sees_every_valid_slot_and_no_masked_one(tiny):
  model, params, _ = tiny
  tokens = _tokens()
  mask = jnp.asarray([True, True, True, False])
  prefix = Prefix(keys=_kv(4).keys, values=_kv(4).values, mask=mask)
  base = np.asarray(_run(tiny, tokens, prefix=prefix).hidden)
  for slot in range(4):
    moved = prefix.replace(values=prefix.values.at[:, slot].add(3.0))
    diff = np.abs(np.asarray(_run(tiny, tokens, prefix=moved).hidden) - base).max(-1)
    if mask[slot]:
      assert diff.min() > 1e-4, f"slot {slot} not seen by every token (bidirectional)"
    else:
      assert diff.max() == 0.0, "a masked slot leaked"
  # A masked slot is the same as no slot: positions count valid slots only.
  short = Prefix(keys=prefix.keys[:, :3], values=prefix.values[:, :3])
  np.testing.assert_allclose(_run(tiny, tokens, prefix=short).hidden, base, atol=1e-5,
                             rtol=0)


def test_zero_length_and_switched_off_prefixes_equal_plain(tiny):
  tokens = _tokens()
  plain = _run(tiny, tokens)
  for prefix in (Prefix(hidden=jnp.zeros((CFG.num_layers, 0, CFG.hidden_size))),
                 Prefix(prompt=jnp.ones((3, CFG.hidden_size)), mask=jnp.zeros((3,), bool))):
    out = _run(tiny, tokens, prefix=prefix)
    np.testing.assert_allclose(out.hidden, plain.hidden, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.logits, plain.logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["kv", "prompt"])
def test_per_example_prefixes_equal_separate_runs(tiny, form):
  tokens = _tokens()
  make = {"kv": lambda s, lp: _kv(lp, seed=s),
          "prompt": lambda s, lp: Prefix(prompt=jax.random.normal(
              jax.random.PRNGKey(s), (lp, CFG.hidden_size)))}[form]
  pa, pb = make(10, 4), make(20, 2)  # different lengths: the bank pads and masks
  mixed = _run(tiny, tokens, prefix=pad_and_stack([pa, pb]).gather(jnp.asarray([0, 1])))
  for row, p in ((0, pa), (1, pb)):
    alone = _run(tiny, tokens, prefix=p)
    np.testing.assert_allclose(mixed.hidden[row], alone.hidden[row], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mixed.logits[row], alone.logits[row], atol=1e-5, rtol=0)


def test_padding_with_prompt_equals_unpadded_run(tiny):
  tokens = _tokens()
  prefix = Prefix(prompt=jax.random.normal(jax.random.PRNGKey(4), (3, CFG.hidden_size)))
  mask = np.ones((2, 7), bool)
  mask[1, 4:] = False
  out = _run(tiny, tokens, prefix=prefix, mask=jnp.asarray(mask))
  alone = _run(tiny, tokens[1:, :4], prefix=prefix)
  np.testing.assert_allclose(out.hidden[1, :4], alone.hidden[0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out.logits[1], alone.logits[0], atol=1e-5, rtol=0)
  other = jnp.where(jnp.asarray(mask), tokens, (tokens + 7) % CFG.vocab_size)
  out2 = _run(tiny, other, prefix=prefix, mask=jnp.asarray(mask))
  np.testing.assert_allclose(out2.logits, out.logits, atol=1e-6, rtol=0)


def test_mean_pool_and_sentence_embedding_with_padding(tiny):
  model, params, _ = tiny
  hidden = np.random.RandomState(0).randn(2, 5, 3).astype(np.float32)
  mask = np.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
  np.testing.assert_allclose(bert.mean_pool(jnp.asarray(hidden), jnp.asarray(mask)),
                             [hidden[0, :3].mean(0), hidden[1].mean(0)], atol=1e-6, rtol=0)
  embed = jax.jit(functools.partial(model.apply, method=type(model).sentence_embedding))
  tokens, prefix = _tokens(), Prefix(hidden=_hidden(4))
  mask = np.ones((2, 7), bool)
  mask[0, 3:] = False
  emb = embed({"params": params}, tokens, prefix=prefix, mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, atol=1e-5)
  # Padding is invisible: the padded row embeds like its 3 real tokens alone (row 1 = row 0).
  short = jnp.concatenate([tokens[:1, :3], tokens[:1, :3]])
  alone = embed({"params": params}, short, prefix=prefix)
  np.testing.assert_allclose(emb[0], alone[0], atol=1e-5, rtol=0)


def test_head_params_and_init_head():
  with_head = build_model(CFG)
  params = random_params(with_head)
  assert set(bert.HEAD_PARAMS) <= set(params)
  # A checkpoint without a head (e.g. all-MiniLM-L6-v2) plus a fresh head.
  bare = random_params(build_model(CFG.replace(num_labels=0)))
  assert not set(bert.HEAD_PARAMS) & set(bare)
  head = bert.init_head(CFG, jax.random.PRNGKey(0))
  assert jax.tree_util.tree_map(jnp.shape, head) == jax.tree_util.tree_map(
      jnp.shape, {k: params[k] for k in bert.HEAD_PARAMS})
  tokens = _tokens()

  def loss(head_params, prefix):  # trained together: the head and the prefix
    out = with_head.apply({"params": {**bare, **head_params}}, tokens, prefix=prefix)
    return jnp.sum(out.logits ** 2)

  g_head, g_prefix = jax.jit(jax.grad(loss, argnums=(0, 1)))(head, Prefix(hidden=_hidden(4)))
  assert np.abs(np.asarray(g_head["classifier"]["kernel"])).max() > 0
  assert np.abs(np.asarray(g_prefix.hidden)).max() > 0


def test_vocab_init_kv_equals_projected_hidden_init(tiny):
  """'vocab' init (the backbone's own activations of random tokens) in both forms: the kv init
  is the hidden init pushed through W_k/W_v, as the hidden form's semantics require."""
  model, params, _ = tiny
  rng = jax.random.PRNGKey(3)
  init = {m: init_prefix(PrefixSpec(method=m, length=3, init="vocab"), CFG, rng, model=model,
                         backbone=params) for m in ("hidden", "kv")}
  assert init["hidden"]["hidden"].shape == (CFG.num_layers, 3, CFG.hidden_size)
  projected = model.apply({"params": params}, Prefix(hidden=init["hidden"]["hidden"]),
                          method=type(model).prefix_to_kv)
  np.testing.assert_allclose(init["kv"]["keys"], projected.keys, atol=1e-5, rtol=0)
  np.testing.assert_allclose(init["kv"]["values"], projected.values, atol=1e-5, rtol=0)


def test_bad_prefix_shapes_fail_before_compilation(tiny):
  model, params, _ = tiny
  tokens = _tokens()
  apply = jax.jit(lambda p, pre: model.apply({"params": p}, tokens, prefix=pre))
  cases = [
      (Prefix(hidden=jnp.zeros((3, 2, 32))), r"expected \(2, 2, 32\).*layers=2"),
      (Prefix(hidden=jnp.zeros((2, 2, 16))), r"expected \(2, 2, 32\).*hidden=32"),
      (Prefix(keys=jnp.zeros((2, 2, 4, 4)), values=jnp.zeros((2, 2, 4, 4))),
       r"expected \(2, 2, 4, 8\)"),
      (Prefix(hidden=jnp.zeros((3, 2, 2, 32))), "batch=2"),
      (Prefix(prompt=jnp.zeros((18, 32))), r"18 \+ sequence length 7 = 25 exceeds .* 24"),
  ]
  for prefix, msg in cases:
    with pytest.raises(PrefixShapeError, match=msg) as e:
      apply(params, prefix)
    assert "\n" not in str(e.value)
  with pytest.raises(PrefixShapeError, match="mask shape"):
    model.apply({"params": params}, tokens, mask=jnp.ones((2, 6), bool))
