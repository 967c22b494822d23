"""Packed rows (several examples per row, segment ids): each example is computed exactly as it
would be alone in its own row, so packing changes the speed, never the loss or the gradient."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.data import batching
from prefix_jax.data.encode import Encoded
from prefix_jax.data.iterator import TrainIterator
from prefix_jax.models.decoder import segment_starts
from prefix_jax.prefixes import Prefix, PrefixShapeError, PrefixSpec, init_prefix
from prefix_jax.train.loss import add_loss_positions, lm_loss
from tiny import tiny_model
from trees import assert_trees_close


ARCHS = ["llama", "gpt2"]
PAD = 0


def _examples(cfg, n, seed=0, lo=3, hi=14):
  """n (source, target) pairs of random lengths (sources end with a separator token)."""
  rng = np.random.RandomState(seed)
  out = []
  for _ in range(n):
    s, t = rng.randint(lo, hi), rng.randint(2, hi // 2 + 2)
    out.append((rng.randint(1, cfg.vocab_size, s).astype(np.int32),
                rng.randint(1, cfg.vocab_size, t).astype(np.int32)))
  return out


def _prefix(cfg, form, lp=3, seed=1, batch=None):
  k = jax.random.PRNGKey(seed)
  lead = () if batch is None else (batch,)
  if form == "kv":
    shape = (*lead, cfg.num_layers, lp, cfg.num_kv_heads, cfg.head_dim)
    return Prefix(keys=jax.random.normal(k, shape), values=jax.random.normal(k + 1, shape))
  if form == "hidden":
    return Prefix(hidden=jax.random.normal(k, (*lead, cfg.num_layers, lp, cfg.hidden_size)))
  if form == "prompt":
    return Prefix(prompt=jax.random.normal(k, (*lead, lp, cfg.hidden_size)))
  return None


def test_segment_starts_counts_valid_tokens_before_each_segment():
  segments = jnp.asarray([[1, 1, 2, 2, 2, 3, 0, 0]])
  mask = segments > 0
  np.testing.assert_array_equal(segment_starts(mask, segments), [[0, 0, 2, 2, 2, 5, 6, 6]])


@functools.lru_cache
def _apply(model):
  return jax.jit(lambda params, tokens, prefix, mask, segments: model.apply(
      {"params": params}, tokens, prefix=prefix, mask=mask, segments=segments))


def _alone(model, params, examples, prefix):
  """Logits of each example in its own row (right padding, which is invisible) [N, T, V]."""
  padded = batching.pack_train([s for s, _ in examples], [t for _, t in examples],
                               [0] * len(examples), batch_size=len(examples), length=32,
                               pad_id=PAD)
  return _apply(model)(params, padded["inputs"], prefix, padded["mask"], None)


def _segments_of(packed):
  """(row, seg, token indices) of every example in a packed batch."""
  for row in range(len(packed["valid"])):
    for seg in range(1, packed["num_examples"][row] + 1):
      yield row, seg, np.nonzero(packed["segments"][row] == seg)[0]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("form", ["kv", "hidden", "prompt", None])
def test_packed_logits_equal_each_example_alone(arch, form):
  cfg, model, params = tiny_model(arch)
  examples = _examples(cfg, 7)
  packed = batching.pack_segments([s for s, _ in examples], [t for _, t in examples], [0] * 7,
                                  length=40, pad_id=PAD)
  assert packed["num_examples"].sum() == 7 and len(packed["valid"]) < 7  # really packed
  prefix = _prefix(cfg, form)
  logits = _apply(model)(params, packed["inputs"], prefix, packed["mask"], packed["segments"])
  alone = _alone(model, params, examples, prefix)
  seen = set()
  for row, _, where in _segments_of(packed):
    full = packed["inputs"][row, where]
    i = next(i for i, (s, t) in enumerate(examples)
             if i not in seen and np.array_equal(np.concatenate([s, t])[:-1], full))
    np.testing.assert_allclose(logits[row, where], alone[i, :len(where)], atol=2e-5, rtol=2e-5)
    seen.add(i)
  assert len(seen) == 7


@pytest.mark.parametrize("arch", ARCHS)
def test_packed_loss_and_gradient_equal_padded_batch(arch):
  """lm_loss and its prefix gradient: a packed batch == the same examples one per row."""
  cfg, model, params = tiny_model(arch)
  examples = _examples(cfg, 9, seed=3)
  srcs, tgts = [e[0] for e in examples], [e[1] for e in examples]
  padded = batching.pack_train(srcs, tgts, [0] * 9, batch_size=9, length=32, pad_id=PAD)
  packed = batching.pack_segments(srcs, tgts, [0] * 9, length=48, pad_id=PAD, row_multiple=2)
  assert len(packed["valid"]) % 2 == 0
  spec = PrefixSpec(method="kv", length=4, reparam="mlp", mlp_hidden=16)
  pp = init_prefix(spec, cfg, jax.random.PRNGKey(0))
  loss = jax.jit(jax.value_and_grad(
      functools.partial(lm_loss, model=model, spec=spec), has_aux=True))
  (l_pad, m_pad), g_pad = loss(pp, params, add_loss_positions(padded))
  (l_pack, m_pack), g_pack = loss(pp, params, add_loss_positions(packed))
  assert float(m_pad["target_tokens"]) == float(m_pack["target_tokens"]) == sum(map(len, tgts))
  np.testing.assert_allclose(float(l_pack), float(l_pad), rtol=1e-5)
  assert_trees_close(g_pack, g_pad, atol=1e-6, rtol=1e-4)
  assert max(float(jnp.abs(a).max()) for a in jax.tree_util.tree_leaves(g_pack)) > 0


def test_packed_bank_rows_hold_one_task_each_and_match_per_example_prefixes():
  cfg, model, params = tiny_model("llama")
  examples = _examples(cfg, 8, seed=5)
  tasks = [0, 1, 2, 1, 0, 2, 2, 1]
  packed = batching.pack_segments([s for s, _ in examples], [t for _, t in examples], tasks,
                                  length=40, pad_id=PAD)
  bank = _prefix(cfg, "kv", batch=3)
  logits = _apply(model)(params, packed["inputs"], bank.gather(jnp.asarray(packed["task"])),
                         packed["mask"], packed["segments"])
  alone = _alone(model, params, examples, bank.gather(jnp.asarray(tasks)))
  seen = set()
  for row, _, where in _segments_of(packed):
    full = packed["inputs"][row, where]
    i = next(i for i, (s, t) in enumerate(examples)
             if i not in seen and np.array_equal(np.concatenate([s, t])[:-1], full))
    assert packed["task"][row] == tasks[i]
    np.testing.assert_allclose(logits[row, where], alone[i, :len(where)], atol=2e-5, rtol=2e-5)
    seen.add(i)
  assert len(seen) == 8 and len(packed["valid"]) >= 3  # one row per task at least


def test_first_fit_rows_places_every_item_once_within_capacity():
  rng = np.random.RandomState(0)
  lengths = list(rng.randint(1, 30, 50))
  rows = batching.first_fit_rows(lengths, 32)
  placed = sorted(i for r in rows for i in r)
  assert placed == list(range(50))
  assert all(sum(lengths[i] for i in r) <= 32 for r in rows)
  assert len(rows) <= -(-sum(lengths) // 32) * 11 // 9 + 1  # FFD bound: 11/9 OPT + 1
  assert rows == batching.first_fit_rows(lengths, 32)  # deterministic
  with pytest.raises(ValueError, match="more than the packed row length 32"):
    batching.first_fit_rows([33], 32)


def test_pack_segments_layout():
  srcs = [np.array([5, 6, 7]), np.array([8, 9])]
  tgts = [np.array([10, 11]), np.array([12])]
  b = batching.pack_segments(srcs, tgts, [0, 0], length=8, pad_id=PAD, row_multiple=2)
  assert b["inputs"].shape == (2, 8) and b["valid"].tolist() == [True, False]
  np.testing.assert_array_equal(b["inputs"][0], [5, 6, 7, 10, 8, 9, 0, 0])
  np.testing.assert_array_equal(b["targets"][0], [6, 7, 10, 11, 9, 12, 0, 0])
  np.testing.assert_array_equal(b["weights"][0], [0, 0, 1, 1, 0, 1, 0, 0])
  np.testing.assert_array_equal(b["segments"][0], [1, 1, 1, 1, 2, 2, 0, 0])
  assert b["weights"][1].sum() == 0 and b["num_examples"].tolist() == [2, 0]


def test_packed_row_length_takes_the_fewest_token_slots():
  lengths, tasks = [5, 5, 5, 5], [0, 0, 0, 0]
  # Rows of 8 hold one example (4 x 8 = 32 slots), of 12 two (2 x 12 = 24), of 16 three (32).
  assert batching.packed_row_length(lengths, tasks, length=16, step=4) == 12
  # Four rows at least (devices x accumulation): 4 x 8 beats 4 x 12 and 4 x 16.
  assert batching.packed_row_length(lengths, tasks, length=16, step=4, row_multiple=4) == 8
  # Two tasks never share a row: rows of 12 now hold one example each (4 x 12): 4 x 8 wins.
  assert batching.packed_row_length(lengths, [0, 1, 2, 3], length=16, step=4) == 8
  assert batching.packed_row_length(lengths, tasks, length=16, step=0) == 16
  assert batching.packed_row_length([13], [0], length=14, step=4) == 14  # the cap itself
  with pytest.raises(batching.PackingError, match="more than the packed row length 14"):
    batching.packed_row_length([15], [0], length=14, step=4)


def test_pack_segments_with_a_length_step_keeps_every_token():
  srcs = [np.array([5, 6, 7]), np.array([8, 9]), np.array([4, 4, 4, 4])]
  tgts = [np.array([10, 11]), np.array([12]), np.array([13, 14])]
  fixed = batching.pack_segments(srcs, tgts, [0] * 3, length=32, pad_id=PAD)
  short = batching.pack_segments(srcs, tgts, [0] * 3, length=32, pad_id=PAD, length_step=4)
  assert fixed["inputs"].shape == (1, 32) and short["inputs"].shape == (1, 12)  # 11 tokens
  for k in ("inputs", "targets", "weights", "mask", "segments"):
    np.testing.assert_array_equal(short[k], fixed[k][:, :12])
  assert not fixed["mask"][:, 12:].any()


def _encoded(n, seed=0):
  rng = np.random.RandomState(seed)
  src = [rng.randint(1, 50, rng.randint(3, 12)).astype(np.int32) for _ in range(n)]
  tgt = [rng.randint(1, 50, rng.randint(2, 8)).astype(np.int32) for _ in range(n)]
  return Encoded(ids=[str(i) for i in range(n)], source=src, target=tgt,
                 task=np.zeros(n, np.int32), references=None, report=None)


def test_packed_iterator_hosts_share_one_packing_and_resume_exactly():
  enc = _encoded(40)
  kw = dict(batch_size=10, pad_id=PAD, seed=3, pack_length=32, row_multiple=2)
  one = TrainIterator(enc, **kw)
  hosts = [TrainIterator(enc, **dict(kw, batch_size=5), process_index=i, process_count=2)
           for i in range(2)]
  for _ in range(5):
    whole = next(one)
    parts = [next(h) for h in hosts]
    assert len(whole["valid"]) % 2 == 0
    assert all(len(p["valid"]) % 2 == 0 for p in parts)  # each host: a multiple of its devices
    for k in whole:
      if len(whole["valid"]) % 4 == 0:  # same rounding (to 2 x 2 rows) on one host
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
    assert sum(int(p["num_examples"].sum()) for p in parts) == 10
  state = one.get_state()
  expect = next(one)
  again = TrainIterator(enc, **kw)
  again.set_state(state)
  for k, v in next(again).items():
    np.testing.assert_array_equal(v, expect[k])


def test_packed_iterator_with_a_length_step_shortens_rows_per_batch():
  enc = _encoded(40)
  kw = dict(batch_size=10, pad_id=PAD, seed=3, pack_length=48, row_multiple=2)
  fixed, short = TrainIterator(enc, **kw), TrainIterator(enc, **kw, pack_length_step=8)
  widths = set()
  for _ in range(4):
    a, b = next(fixed), next(short)
    r, t = b["inputs"].shape
    widths.add(t)
    assert t % 8 == 0 and t <= 48 and r % 2 == 0
    assert r * t <= a["inputs"].size  # never more slots than fixed rows
    assert b["num_examples"].sum() == a["num_examples"].sum() == 10
    assert b["weights"].sum() == a["weights"].sum()
  assert min(widths) < 48


def test_packed_iterator_refuses_examples_longer_than_rows():
  with pytest.raises(ValueError, match="more than the packed row length 8 \\(data.pack_length\\)"):
    TrainIterator(_encoded(20), batch_size=4, pad_id=PAD, pack_length=8)


def test_segments_refuse_a_cache_or_an_infix():
  cfg, model, params = tiny_model("gpt2")
  tokens = jnp.ones((1, 6), jnp.int32)
  seg = jnp.ones((1, 6), jnp.int32)
  with pytest.raises(PrefixShapeError, match="segments"):
    model.apply({"params": params}, tokens, prefix=_prefix(cfg, "kv"), segments=seg,
                prefix_at=jnp.asarray([2]))
  with pytest.raises(PrefixShapeError, match="segments shape"):
    model.apply({"params": params}, tokens, segments=jnp.ones((1, 5), jnp.int32))
