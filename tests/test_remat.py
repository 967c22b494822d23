"""Rematerialized blocks (`models.remat`) change what the backward pass keeps, not results."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import ModelConfig, build_model
from prefix_jax.prefixes import Prefix, PrefixSpec, init_prefix
from prefix_jax.train.loss import add_loss_positions, lm_loss
from test_train_invariants import memorization_batch
from tiny import CONFIGS, tiny_model
from trees import assert_trees_close


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
    assert_trees_close(grads, ref_grads, atol=1e-6, rtol=1e-5)


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


def _same_grads(loss_of, args, policies):
  """loss_of(remat)(*args) -> scalar: equal values and gradients w.r.t. args[0] per policy."""
  ref_loss, ref_grads = jax.jit(jax.value_and_grad(loss_of("none")))(*args)
  assert "remat2" not in str(jax.make_jaxpr(loss_of("none"))(*args))
  for remat in policies:
    assert "remat2" in str(jax.make_jaxpr(loss_of(remat))(*args))  # the layers are wrapped
    loss, grads = jax.jit(jax.value_and_grad(loss_of(remat)))(*args)
    np.testing.assert_allclose(loss, ref_loss, atol=1e-6, rtol=0)
    assert_trees_close(grads, ref_grads, atol=1e-6, rtol=1e-5)
    assert any(np.abs(np.asarray(g)).max() > 0 for g in jax.tree_util.tree_leaves(grads))


def test_bert_and_bart_layers_take_the_policy_too():
  from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
  from prefix_jax.train.loss import classification_loss
  from test_bart_prefix import CFG as BART, _kv
  from test_bert_prefix import CFG as BERT, random_params
  # BERT: classification with a kv prefix (P-tuning v2).
  bert_params = random_params(build_model(BERT))
  spec = PrefixSpec(method="kv", length=3, init_std=0.5)
  rs = np.random.RandomState(0)
  batch = {"inputs": jnp.asarray(rs.randint(3, 61, (4, 7))), "mask": jnp.ones((4, 7), bool),
           "labels": jnp.asarray(rs.randint(0, 3, (4,)))}
  _same_grads(lambda remat: lambda p, b: classification_loss(
      p, b, batch, model=build_model(BERT, remat=remat), spec=spec)[0],
      (init_prefix(spec, BERT, jax.random.PRNGKey(1)), bert_params), ("dots", "full"))
  # BART: all three prefixes, cross-entropy of the decoder's logits.
  bart_params = random_params(build_model(BART))
  src, tgt = (jnp.asarray(rs.randint(3, BART.vocab_size, (2, n))) for n in (6, 5))

  def bart_loss(remat):
    def loss(kv, params):  # kv: {part: (keys, values)}, the trainable arrays
      prefix = Seq2SeqPrefix(**{p: Prefix(keys=k, values=v) for p, (k, v) in kv.items()})
      logits = build_model(BART, remat=remat).apply({"params": params}, src, tgt, prefix=prefix)
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[..., None], -1))
    return loss
  kv = {p: (_kv(p, 10 * i).keys, _kv(p, 10 * i).values)
        for i, p in enumerate(("encoder", "decoder", "cross"))}
  _same_grads(bart_loss, (kv, bart_params), ("dots", "full"))
