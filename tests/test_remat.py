"""Rematerialized blocks (`models.remat`) change what the backward pass keeps, not results."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import ModelConfig, build_model
from prefix_jax.prefixes import PrefixSpec, init_prefix
from prefix_jax.train.loss import add_loss_positions, lm_loss
from test_train_invariants import memorization_batch
from tiny import CONFIGS, tiny_model


def _loss_and_grads(model, spec, prefix, backbone, batch):
  loss_fn = functools.partial(lm_loss, model=model, spec=spec)
  (loss, _), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(prefix, backbone, batch)
  return loss, grads


@pytest.mark.parametrize("arch,method,policies", [
    ("llama", "kv", ("dots", "full")), ("gpt2", "hidden", ("dots",)),
    ("gpt2", "prompt", ("full",))])
def test_every_policy_gives_the_same_loss_and_prefix_gradient(arch, method, policies):
  cfg, model, backbone = tiny_model(arch)
  spec = PrefixSpec(method=method, length=3)
  prefix = init_prefix(spec, cfg, jax.random.PRNGKey(2))
  batch = add_loss_positions({k: np.asarray(v) for k, v in
                              memorization_batch(cfg, b=3, t=12, src=5).items()}, multiple=4)
  ref_loss, ref_grads = _loss_and_grads(model, spec, prefix, backbone, batch)
  for remat in policies:
    other = build_model(cfg, remat=remat)
    # Same parameter tree: a checkpoint of one policy loads into another.
    shapes = jax.eval_shape(other.init, jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))
    assert (jax.tree_util.tree_structure(shapes["params"])
            == jax.tree_util.tree_structure(backbone))
    loss, grads = _loss_and_grads(other, spec, prefix, backbone, batch)
    np.testing.assert_allclose(loss, ref_loss, atol=1e-6, rtol=0)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
      np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_dots_policy_shrinks_the_backward_buffers():
  # A GPT-2 of moderate width, compiled only: XLA's own count of the step's temporary memory.
  cfg = ModelConfig(arch="gpt2", vocab_size=512, hidden_size=128, num_layers=2, num_heads=4,
                    intermediate_size=512, max_positions=128, activation="gelu_new")
  spec = PrefixSpec(method="kv", length=4)
  prefix = init_prefix(spec, cfg, jax.random.PRNGKey(0))
  batch = add_loss_positions({k: np.asarray(v) for k, v in
                              memorization_batch(cfg, b=4, t=64, src=8).items()}, groups=1)
  temp = {}
  for remat in ("none", "dots"):
    model = build_model(cfg, remat=remat)
    backbone = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                              jnp.zeros((1, 4), jnp.int32))["params"]
    grad = jax.grad(lambda p, b, x: lm_loss(p, b, x, model=model, spec=spec)[0])
    compiled = jax.jit(grad).lower(prefix, backbone, batch).compile()
    temp[remat] = compiled.memory_analysis().temp_size_in_bytes
  assert temp["dots"] < 0.9 * temp["none"], temp


def test_unknown_policy_is_refused():
  with pytest.raises(ValueError, match="remat must be one of"):
    build_model(CONFIGS["gpt2"], remat="everything")
