"""Prefix parameterization: MLP folding, activation inits, banks, spec validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.prefixes import (Prefix, PrefixShapeError, PrefixSpec, check_params,
                                 fold_reparam, init_prefix, materialize)
from tiny import apply, tiny_model


class CharTokenizer:
  def encode(self, text):
    return [ord(c) % 61 for c in text]


@pytest.mark.parametrize("method", ["hidden", "kv", "prompt"])
def test_folded_mlp_gives_the_same_logits_without_the_mlp(method):
  cfg, model, backbone = tiny_model("llama")
  spec = PrefixSpec(method=method, length=3, reparam="mlp", mlp_hidden=8, init_std=0.5)
  params = init_prefix(spec, cfg, jax.random.PRNGKey(0))
  folded_spec, folded = fold_reparam(spec, cfg, params)
  assert folded_spec.reparam == "none" and "mlp" not in folded
  check_params(folded_spec, cfg, folded)
  tokens = jnp.arange(6)[None] % cfg.vocab_size
  with_mlp = apply(model, {"params": backbone}, tokens, prefix=materialize(spec, cfg, params))
  without = apply(model, {"params": backbone}, tokens,
                  prefix=materialize(folded_spec, cfg, folded))
  np.testing.assert_allclose(with_mlp, without, atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_word_init_hidden_and_kv_agree(arch):
  """'table-to-text:' init: the hidden form starts as each layer's input activations of the
  words, the kv form as their keys/values: the two give the same prefix keys."""
  cfg, model, backbone = tiny_model(arch)
  tok = CharTokenizer()
  kw = dict(model=model, backbone=backbone, tokenizer=tok)
  hid = init_prefix(PrefixSpec(method="hidden", length=5, init="words"), cfg,
                    jax.random.PRNGKey(0), **kw)
  kv = init_prefix(PrefixSpec(method="kv", length=5, init="words"), cfg,
                   jax.random.PRNGKey(0), **kw)
  as_kv = apply(model, {"params": backbone}, Prefix(**hid), method=type(model).prefix_to_kv)
  np.testing.assert_allclose(as_kv.keys, kv["keys"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(as_kv.values, kv["values"], atol=1e-5, rtol=0)
  # Layer 0's input is the embedding of the words (+ positions for GPT-2).
  prompt = init_prefix(PrefixSpec(method="prompt", length=5, init="words"), cfg,
                       jax.random.PRNGKey(0), **kw)
  emb_name = "embed" if arch == "llama" else "wte"
  ids = np.resize(tok.encode("table-to-text:"), 5)
  np.testing.assert_allclose(prompt["prompt"], backbone[emb_name]["embedding"][ids], atol=0)


def test_bank_materializes_each_task_independently():
  cfg, model, backbone = tiny_model("gpt2")
  spec = PrefixSpec(method="kv", length=2, num_tasks=3, reparam="mlp", mlp_hidden=8)
  bank = init_prefix(spec, cfg, jax.random.PRNGKey(0))
  full = materialize(spec, cfg, bank)
  assert full.keys.shape == (3, cfg.num_layers, 2, cfg.num_kv_heads, cfg.head_dim)
  one = spec.replace(num_tasks=0)
  task1 = materialize(one, cfg, jax.tree_util.tree_map(lambda x: x[1], bank))
  np.testing.assert_allclose(full.gather(jnp.asarray([1])).keys[0], task1.keys, atol=1e-6)


@pytest.mark.parametrize("bad,match", [
    (dict(length=0), "prefix length must be a positive int, got 0"),
    (dict(length=-3), "got -3"),
    (dict(method="lora"), "prefix method 'lora' unknown"),
    (dict(placement="suffix"), "placement 'suffix'"),
])
def test_bad_specs_are_rejected(bad, match):
  with pytest.raises(PrefixShapeError, match=match):
    PrefixSpec(**bad)


def test_mismatched_params_are_rejected():
  cfg, _, _ = tiny_model("llama")
  spec = PrefixSpec(method="kv", length=4)
  other = init_prefix(spec.replace(length=5), cfg, jax.random.PRNGKey(0))
  with pytest.raises(PrefixShapeError, match="expects"):
    check_params(spec, cfg, other)
