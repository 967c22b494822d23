"""What a prefix does to the BERT encoder, checked against hand-built references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import ModelConfig, build_model
from prefix_jax.models import bert
from prefix_jax.prefixes import Prefix, PrefixShapeError, pad_and_stack

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
  model = build_model(CFG)
  return model, random_params(model)


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


def _run(model, params, tokens, **kw):
  return model.apply({"params": params}, tokens, **kw)


def test_hidden_form_equals_kv_from_frozen_projections(tiny):
  model, params = tiny
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
  by_hidden = _run(model, params, tokens, prefix=Prefix(hidden=hidden))
  by_kv = _run(model, params, tokens, prefix=kv)
  np.testing.assert_allclose(by_hidden.hidden, by_kv.hidden, atol=1e-5, rtol=0)
  np.testing.assert_allclose(by_hidden.logits, by_kv.logits, atol=1e-5, rtol=0)
  cached = model.apply({"params": params}, Prefix(hidden=hidden),
                       method=type(model).prefix_to_kv)
  np.testing.assert_allclose(cached.keys, kv.keys, atol=1e-5, rtol=0)
  np.testing.assert_allclose(cached.values, kv.values, atol=1e-5, rtol=0)
  # The prefix matters.
  plain = _run(model, params, tokens)
  assert np.abs(np.asarray(plain.hidden - by_kv.hidden)).max() > 1e-2


def test_every_token_sees_every_valid_slot_and_no_masked_one(tiny):
  model, params = tiny
  tokens = _tokens()
  mask = jnp.asarray([True, True, True, False])
  prefix = Prefix(keys=_kv(4).keys, values=_kv(4).values, mask=mask)
  base = np.asarray(_run(model, params, tokens, prefix=prefix).hidden)
  for slot in range(4):
    moved = prefix.replace(values=prefix.values.at[:, slot].add(3.0))
    diff = np.abs(np.asarray(_run(model, params, tokens, prefix=moved).hidden) - base).max(-1)
    if mask[slot]:
      assert diff.min() > 1e-4, f"slot {slot} not seen by every token (bidirectional)"
    else:
      assert diff.max() == 0.0, "a masked slot leaked"
  # A masked slot is the same as no slot: positions count valid slots only.
  short = Prefix(keys=prefix.keys[:, :3], values=prefix.values[:, :3])
  np.testing.assert_allclose(_run(model, params, tokens, prefix=short).hidden, base, atol=1e-5,
                             rtol=0)


def test_zero_length_and_switched_off_prefixes_equal_plain(tiny):
  model, params = tiny
  tokens = _tokens()
  plain = _run(model, params, tokens)
  for prefix in (None, Prefix(hidden=jnp.zeros((CFG.num_layers, 0, CFG.hidden_size))),
                 Prefix(prompt=jnp.zeros((0, CFG.hidden_size))),
                 Prefix(hidden=_hidden(3), mask=jnp.zeros((3,), bool)),
                 Prefix(prompt=jnp.ones((3, CFG.hidden_size)), mask=jnp.zeros((3,), bool))):
    out = _run(model, params, tokens, prefix=prefix)
    np.testing.assert_allclose(out.hidden, plain.hidden, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.logits, plain.logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["hidden", "kv", "prompt"])
def test_per_example_prefixes_equal_separate_runs(tiny, form):
  model, params = tiny
  tokens = _tokens()
  make = {"hidden": lambda s, lp: Prefix(hidden=_hidden(lp, seed=s)),
          "kv": lambda s, lp: _kv(lp, seed=s),
          "prompt": lambda s, lp: Prefix(prompt=jax.random.normal(
              jax.random.PRNGKey(s), (lp, CFG.hidden_size)))}[form]
  pa, pb = make(10, 4), make(20, 2)
  mixed = _run(model, params, tokens, prefix=pad_and_stack([pa, pb]).gather(jnp.asarray([0, 1])))
  for row, p in ((0, pa), (1, pb)):
    alone = _run(model, params, tokens[row:row + 1], prefix=p)
    np.testing.assert_allclose(mixed.hidden[row], alone.hidden[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mixed.logits[row], alone.logits[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["hidden", "prompt"])
def test_padding_with_prefix_equals_unpadded_run(tiny, form):
  model, params = tiny
  tokens = _tokens()
  prefix = (Prefix(hidden=_hidden(3)) if form == "hidden" else
            Prefix(prompt=jax.random.normal(jax.random.PRNGKey(4), (3, CFG.hidden_size))))
  mask = np.ones((2, 7), bool)
  mask[1, 4:] = False
  out = _run(model, params, tokens, prefix=prefix, mask=jnp.asarray(mask))
  alone = _run(model, params, tokens[1:, :4], prefix=prefix)
  np.testing.assert_allclose(out.hidden[1, :4], alone.hidden[0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out.logits[1], alone.logits[0], atol=1e-5, rtol=0)
  other = jnp.where(jnp.asarray(mask), tokens, (tokens + 7) % CFG.vocab_size)
  out2 = _run(model, params, other, prefix=prefix, mask=jnp.asarray(mask))
  np.testing.assert_allclose(out2.logits, out.logits, atol=1e-6, rtol=0)


def test_mean_pool_and_sentence_embedding(tiny):
  model, params = tiny
  hidden = np.random.RandomState(0).randn(2, 5, 3).astype(np.float32)
  mask = np.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
  np.testing.assert_allclose(bert.mean_pool(jnp.asarray(hidden), jnp.asarray(mask)),
                             [hidden[0, :3].mean(0), hidden[1].mean(0)], atol=1e-6, rtol=0)
  tokens = _tokens()
  emb = model.apply({"params": params}, tokens, prefix=Prefix(hidden=_hidden(2)),
                    mask=jnp.asarray(mask[:, :5].repeat(2, 1)[:, :7]),
                    method=type(model).sentence_embedding)
  np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, atol=1e-5)


def test_head_params_and_init_head():
  with_head = build_model(CFG)
  params = random_params(with_head)
  assert set(bert.HEAD_PARAMS) <= set(params)
  # A checkpoint without a head (e.g. all-MiniLM-L6-v2) plus a fresh head.
  bare_cfg = CFG.replace(num_labels=0)
  bare = random_params(build_model(bare_cfg))
  assert not set(bert.HEAD_PARAMS) & set(bare)
  head = bert.init_head(CFG, jax.random.PRNGKey(0))
  assert jax.tree_util.tree_map(jnp.shape, head) == jax.tree_util.tree_map(
      jnp.shape, {k: params[k] for k in bert.HEAD_PARAMS})
  full = {**bare, **head}
  tokens = _tokens()
  prefix = Prefix(hidden=_hidden(2))

  def loss(head_params, prefix):
    out = with_head.apply({"params": {**bare, **head_params}}, tokens, prefix=prefix)
    return jnp.sum(out.logits ** 2)

  g_head, g_prefix = jax.grad(loss, argnums=(0, 1))(head, prefix)
  assert np.abs(np.asarray(g_head["classifier"]["kernel"])).max() > 0
  assert np.abs(np.asarray(g_prefix.hidden)).max() > 0
  # The encoder part is untouched by the head: same hidden states as the bare model.
  np.testing.assert_array_equal(with_head.apply({"params": full}, tokens).hidden,
                                build_model(bare_cfg).apply({"params": bare}, tokens).hidden)


def test_bad_prefix_shapes_fail_before_compilation(tiny):
  model, params = tiny
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
