"""The methods at the shared layers' named points reach BERT and BART too: zero-initialized
LoRA / adapters / gates change nothing, a random LoRA (self- and cross-attention, MLP) folded
into the backbone gives the same outputs, and BitFit / top-k fine-tuning pick the right leaves."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.methods import build_method
from prefix_jax.train.method_run import prepare
from prefix_jax.methods.deltas import merge_lora
from prefix_jax.models import build_model
from prefix_jax.models.deltas import Delta
from prefix_jax.train.config_base import apply_arg, base_config
from test_bart_prefix import CFG as BART_CFG
from test_bert_prefix import CFG as BERT_CFG
from test_bert_prefix import random_params

TOKENS = jnp.asarray(np.random.RandomState(0).randint(3, 61, (2, 6)))


@pytest.fixture(scope="module", params=["bert", "bart"])
def tiny(request):
  model = build_model(BERT_CFG if request.param == "bert" else BART_CFG)
  run = jax.jit(lambda p, d: model.apply({"params": p}, TOKENS, delta=d))
  out = lambda p, d=None: np.asarray(run(p, d).logits if request.param == "bert" else run(p, d))
  return request.param, model, random_params(model), out


def _method(name, model, params, **kw):
  config = apply_arg(base_config(), f"method={name}")
  config.lora.targets = "q,k,v,o,up,down"
  config.llama_adapter.layers = 1
  config.adapter.dim = 4
  for k, v in kw.items():
    config[k.split(".")[0]][k.split(".")[1]] = v
  return build_method(config, model.cfg, params)


@pytest.mark.parametrize("name", ["lora", "adapter", "llama_adapter"])
def test_zero_initialized_methods_change_nothing(tiny, name):
  _, model, params, out = tiny
  m = _method(name, model, params)
  delta = prepare(m, model, params, jax.random.PRNGKey(0)).trainable["delta"]
  # Equal to float32 rounding: the zero delta's terms are exact zeros, but the program that adds
  # them fuses (and so orders) the surrounding sums differently from the plain one; how many
  # last bits that moves depends on the compiler's code generation (the tests' XLA flags).
  plain = out(params)
  ulp_of_largest = np.finfo(np.float32).eps * np.abs(plain).max()
  np.testing.assert_allclose(out(params, Delta(delta, m.lora_scale)), plain, rtol=0,
                             atol=32 * ulp_of_largest)


def test_random_lora_folds_into_the_backbone(tiny):
  arch, model, params, out = tiny
  m = _method("lora", model, params)
  delta = prepare(m, model, params, jax.random.PRNGKey(0)).trainable["delta"]
  keys = jax.random.split(jax.random.PRNGKey(1), len(jax.tree_util.tree_leaves(delta)))
  leaves, treedef = jax.tree_util.tree_flatten(delta)
  delta = treedef.unflatten([x + 0.2 * jax.random.normal(k, x.shape) for x, k in
                             zip(leaves, keys)])
  if arch == "bart":
    assert "cross_attn" in delta["decoder"]["layers_0"]
  ours = out(params, Delta(delta, m.lora_scale))
  assert np.abs(ours - out(params)).max() > 1e-2
  merged = merge_lora(params, delta, m.lora_scale)
  np.testing.assert_allclose(out(merged), ours, atol=1e-4, rtol=0)


def test_bitfit_and_top_layers_pick_their_leaves(tiny):
  arch, model, params, _ = tiny
  trained = prepare(_method("bitfit", model, params), model, params,
                    jax.random.PRNGKey(0)).trainable["backbone"]
  assert trained and all(k.endswith("/bias") for k in trained)
  top = prepare(_method("finetune_top", model, params, **{"finetune.top_layers": 1}), model,
                params, jax.random.PRNGKey(0)).trainable["backbone"]
  depth = 2 if arch == "bart" else 1  # BART: its path has the stack in front
  want = {"layers_1"} if arch == "bert" else {"encoder/layers_0", "decoder/layers_1"}
  assert {"/".join(k.split("/")[:depth]) for k in top} == want
