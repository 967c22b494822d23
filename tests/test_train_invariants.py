"""Training touches the prefix only and the loss goes down. (The backbone is an immutable
argument of the step, so comparing it before and after could not fail; what the trainer trains
is checked on a real run's state in test_trainer::test_only_the_prefix_trains.)"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from prefix_jax.prefixes import PrefixSpec, count_params, init_prefix
from prefix_jax.train.loss import lm_loss
from prefix_jax.train.optim import build_optimizer
from prefix_jax.train.step import init_state, make_train_step
from tiny import tiny_model
from trees import assert_trees_close


def memorization_batch(cfg, seed=0, b=2, t=10, src=4):
  rs = np.random.RandomState(seed)
  seq = rs.randint(0, cfg.vocab_size, (b, t + 1))
  weights = np.zeros((b, t), np.float32)
  weights[:, src - 1:] = 1.0  # loss on target tokens only
  return {"inputs": jnp.asarray(seq[:, :-1]), "targets": jnp.asarray(seq[:, 1:]),
          "weights": jnp.asarray(weights), "mask": jnp.ones((b, t), bool),
          "prefix_at": jnp.full((b,), src, jnp.int32), "task": jnp.zeros((b,), jnp.int32)}


@pytest.mark.parametrize("method,reparam,placement", [
    ("kv", "none", "prefix"), ("hidden", "none", "prefix"), ("prompt", "none", "prefix"),
    ("kv", "mlp", "prefix"), ("hidden", "none", "infix")])
def test_only_prefix_changes_and_loss_goes_down(method, reparam, placement):
  cfg, model, backbone = tiny_model("llama")
  spec = PrefixSpec(method=method, length=4, reparam=reparam, mlp_hidden=16,
                    placement=placement, init_std=0.1)
  prefix = init_prefix(spec, cfg, jax.random.PRNGKey(1))
  batch = memorization_batch(cfg)
  prefix_before = jax.tree_util.tree_map(np.array, prefix)

  loss_fn = functools.partial(lm_loss, model=model, spec=spec)
  # The gradient is taken with respect to the prefix pytree only.
  grads, _ = jax.jit(jax.grad(loss_fn, argnums=0, has_aux=True))(prefix, backbone, batch)
  assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(prefix)

  optimizer = build_optimizer(ml_collections.ConfigDict(
      {"name": "adam", "learning_rate": 1e-1, "schedule": "constant"}), total_steps=60)
  state = init_state({"prefix": prefix, "backbone": {}}, optimizer)
  step = jax.jit(make_train_step(loss_fn, optimizer), donate_argnums=(0,))
  losses = []
  for _ in range(60):
    state, metrics = step(state, backbone, batch, jax.random.PRNGKey(0))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0] - 0.5, losses  # clearly learning: > 0.5 nats lower

  changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != b)),
                                   state.trainable["prefix"], prefix_before)
  assert all(jax.tree_util.tree_leaves(changed))

  # Optimizer state: only prefix-shaped moments (plus scalar counters), nothing backbone-sized.
  prefix_shapes = {tuple(x.shape) for x in jax.tree_util.tree_leaves(prefix)}
  for leaf in jax.tree_util.tree_leaves(state.opt_state):
    assert leaf.ndim == 0 or tuple(leaf.shape) in prefix_shapes, leaf.shape
  assert count_params(state.opt_state) <= 2 * count_params(prefix) + 8
  assert count_params(prefix) < count_params(backbone)


def test_gradient_accumulation_equals_full_batch():
  cfg, model, backbone = tiny_model("gpt2")
  spec = PrefixSpec(method="kv", length=3)
  prefix = init_prefix(spec, cfg, jax.random.PRNGKey(2))
  batch = memorization_batch(cfg, b=4)
  batch["weights"] = batch["weights"].at[1, 5:].set(0.0)  # unequal target counts per row
  loss_fn = functools.partial(lm_loss, model=model, spec=spec)
  optimizer = build_optimizer(ml_collections.ConfigDict(
      {"name": "sgd", "learning_rate": 0.5, "schedule": "constant"}), total_steps=1)
  outs = []
  for accum in (1, 2):
    state = init_state({"prefix": prefix, "backbone": {}}, optimizer)
    state, m = jax.jit(make_train_step(loss_fn, optimizer, accum))(state, backbone, batch, None)
    outs.append((state.trainable["prefix"], float(m["loss"])))
  assert abs(outs[0][1] - outs[1][1]) < 1e-6
  assert_trees_close(outs[0][0], outs[1][0], atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_logits_only_where_needed_give_the_same_loss_and_grads(arch):
  from prefix_jax.train.loss import add_loss_positions
  cfg, model, backbone = tiny_model(arch)
  spec = PrefixSpec(method="kv", length=3)
  prefix = init_prefix(spec, cfg, jax.random.PRNGKey(2))
  batch = memorization_batch(cfg, b=3, t=12, src=5)
  batch["weights"] = batch["weights"].at[1, 8:].set(0.0).at[2, :7].set(0.0)
  sparse = add_loss_positions({k: np.asarray(v) for k, v in batch.items()}, multiple=4)
  assert sparse["loss_pos"].shape == (3, 8)  # 8 target tokens at most -> K = 8 < T = 12
  loss_fn = functools.partial(lm_loss, model=model, spec=spec)
  grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))  # one compile per layout
  (l1, _), g1 = grad_fn(prefix, backbone, batch)
  # One group for the whole batch: K = the 17 loss positions of the 3 rows, rounded to 4.
  flat = add_loss_positions({k: np.asarray(v) for k, v in batch.items()}, multiple=4, groups=1)
  assert flat["loss_pos"].shape == (1, 20) and flat["loss_valid"].sum() == 17
  for other in (sparse, flat):
    (l2, _), g2 = grad_fn(prefix, backbone, other)
    np.testing.assert_allclose(l1, l2, atol=1e-6, rtol=0)
    assert_trees_close(g1, g2, atol=1e-6)
  with pytest.raises(ValueError, match="3 rows cannot be split into 2 loss-position groups"):
    add_loss_positions({k: np.asarray(v) for k, v in batch.items()}, groups=2)


@pytest.mark.parametrize("arch,method,groups,packed", [
    ("gpt2", "prompt", 1, False), ("llama", "hidden", None, True), ("llama", "prompt", 1, True)])
def test_outputs_at_some_positions_equal_the_full_run_gathered(arch, method, groups, packed):
  # out_pos: the last layer's output projection and MLP run at those positions only.
  from prefix_jax.models.decoder import KVCache, gather_positions
  from prefix_jax.prefixes import materialize
  from prefix_jax.prefixes.types import PrefixShapeError
  cfg, model, backbone = tiny_model(arch)
  spec = PrefixSpec(method=method, length=3, init_std=0.5)
  prefix = materialize(spec, cfg, init_prefix(spec, cfg, jax.random.PRNGKey(2)))
  rs = np.random.RandomState(0)
  tokens = jnp.asarray(rs.randint(0, cfg.vocab_size, (4, 9)))
  segments = jnp.asarray(np.repeat([[0] * 4 + [1] * 5], 4, 0)) if packed else None
  pos = jnp.asarray([[0, 3, 4, 8, 13, 22, 27, 35]] if groups == 1 else
                    np.stack([rs.permutation(9)[:5] for _ in range(4)]))
  pos = pos.astype(jnp.int32)
  run = jax.jit(lambda tokens, pos: (
      model.apply({"params": backbone}, tokens, prefix=prefix, segments=segments),
      model.apply({"params": backbone}, tokens, prefix=prefix, segments=segments, out_pos=pos)))
  full, some = run(tokens, pos)
  assert some.shape == (*pos.shape, cfg.vocab_size)
  np.testing.assert_allclose(some, gather_positions(full, pos), atol=1e-5, rtol=1e-5)
  with pytest.raises(PrefixShapeError, match="out_pos .* takes no cache"):
    model.apply({"params": backbone}, tokens, out_pos=pos, cache=KVCache.init(cfg, 4, 16))


def test_fused_linear_cross_entropy_equals_plain_loss_and_grads():
  import optax
  from prefix_jax.train.fused_ce import linear_cross_entropy
  k = jax.random.split(jax.random.PRNGKey(0), 4)
  h, w_head = jax.random.normal(k[0], (37, 16)), jax.random.normal(k[1], (50, 16))
  t = jax.random.randint(k[2], (37,), 0, 50)
  w = (jax.random.uniform(k[3], (37,)) > 0.3).astype(jnp.float32)
  plain = lambda h, m: jnp.sum(w * optax.softmax_cross_entropy_with_integer_labels(h @ m.T, t))
  # 37 rows: 4 chunks of 8 and a remainder of 5; one chunk with no remainder; remainder only
  for chunk in (8, 37, 64):
    fused = jax.jit(lambda h, m: linear_cross_entropy(h, m, t, w, chunk))
    np.testing.assert_allclose(fused(h, w_head), plain(h, w_head), rtol=1e-6)
    for a, b in zip(jax.jit(jax.grad(plain, (0, 1)))(h, w_head),
                    jax.jit(jax.grad(fused, (0, 1)))(h, w_head)):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
