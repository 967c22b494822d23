"""Decoding with a method's added parameters (`delta=`): cached greedy search with unmerged LoRA,
adapters and LLaMA-Adapter equals the argmax of the uncached full forward with the same delta
(and differs from decoding without it); the delta is a traced argument (a new tree of the same
shapes does not recompile); LoRA decoded unmerged equals LoRA folded into the backbone (greedy
and beam); BART decodes with a delta in its encoder and decoder."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.decode import DecodeConfig, beam_search, greedy_search
from prefix_jax.decode.greedy import _greedy
from prefix_jax.methods import build_method
from prefix_jax.methods.deltas import merge_lora
from prefix_jax.models import build_model
from prefix_jax.models.deltas import Delta
from prefix_jax.train.config_base import apply_arg, base_config
from prefix_jax.train.method_run import prepare
from test_bart_prefix import CFG as BART_CFG
from test_bert_prefix import random_params
from tiny import tiny_model

N = 6  # new tokens
CONFIG = DecodeConfig(max_new_tokens=N, num_beams=1, eos_id=None, length_penalty=0.0)


def _random_delta(name, cfg, model, backbone, seed=0):
  """The method's initial tree with every leaf redrawn (a zero LoRA B / adapter up / gate
  would make the delta a no-op)."""
  c = apply_arg(base_config(), f"method={name}")
  c.lora.targets, c.adapter.dim, c.llama_adapter.layers = "q,v,o,up", 4, 2
  m = build_method(c, cfg, backbone)
  tree = prepare(m, model, backbone, jax.random.PRNGKey(0)).trainable["delta"]
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
  tree = treedef.unflatten([2.0 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
  return Delta(tree, m.lora_scale)


def _prompt(cfg):
  rs = np.random.RandomState(0)
  inputs = rs.randint(3, cfg.vocab_size, (2, 5)).astype(np.int32)
  mask = np.ones((2, 5), bool)
  mask[1, :2] = False  # row 1 left-padded
  return jnp.asarray(inputs), jnp.asarray(mask)


def _uncached_greedy(model, backbone, inputs, mask, delta):
  """N argmax steps of the full forward (no cache) over prompt + tokens so far. The buffer
  holds all N slots from the start: causal attention keeps later slots out of each read."""
  b, s = inputs.shape
  tokens = jnp.concatenate([inputs, jnp.zeros((b, N), jnp.int32)], 1)
  full_mask = jnp.concatenate([mask, jnp.ones((b, N), bool)], 1)
  run = jax.jit(lambda p, d, x: model.apply({"params": p}, x, mask=full_mask, delta=d))
  for t in range(N):
    nxt = jnp.argmax(run(backbone, delta, tokens)[:, s + t - 1], -1).astype(jnp.int32)
    tokens = tokens.at[:, s + t].set(nxt)
  return np.asarray(tokens[:, s:])


@pytest.mark.parametrize("arch,name", [(a, n) for a in ("gpt2", "llama")
                                       for n in ("adapter", "llama_adapter", "lora")])
def test_cached_greedy_with_delta_equals_the_uncached_forward(arch, name):
  cfg, model, backbone = tiny_model(arch)
  delta = _random_delta(name, cfg, model, backbone)
  inputs, mask = _prompt(cfg)
  ours = np.asarray(greedy_search(model, backbone, inputs, mask, config=CONFIG,
                                  delta=delta).tokens)
  np.testing.assert_array_equal(ours, _uncached_greedy(model, backbone, inputs, mask, delta))
  plain = np.asarray(greedy_search(model, backbone, inputs, mask, config=CONFIG).tokens)
  assert (ours != plain).any(), "the delta changed no token: the test cannot see a dropped one"


def test_the_delta_is_a_traced_argument():
  cfg, model, backbone = tiny_model("gpt2")
  inputs, mask = _prompt(cfg)
  first = greedy_search(model, backbone, inputs, mask, config=CONFIG,
                        delta=_random_delta("adapter", cfg, model, backbone, seed=0)).tokens
  compiled = _greedy._cache_size()
  second = greedy_search(model, backbone, inputs, mask, config=CONFIG,
                         delta=_random_delta("adapter", cfg, model, backbone, seed=1)).tokens
  assert _greedy._cache_size() == compiled  # same shapes, new values: no recompilation
  assert (np.asarray(first) != np.asarray(second)).any()  # and the new values are used


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_lora_unmerged_equals_merged(search):
  cfg, model, backbone = tiny_model("llama")
  delta = _random_delta("lora", cfg, model, backbone)
  merged = merge_lora(backbone, delta.tree, delta.lora_scale)
  inputs, mask = _prompt(cfg)
  config = CONFIG if search == "greedy" else CONFIG.replace(num_beams=3)
  fn = greedy_search if search == "greedy" else beam_search
  unmerged = fn(model, backbone, inputs, mask, config=config, delta=delta)
  folded = fn(model, merged, inputs, mask, config=config)
  np.testing.assert_array_equal(np.asarray(unmerged.tokens), np.asarray(folded.tokens))
  np.testing.assert_allclose(np.asarray(unmerged.scores), np.asarray(folded.scores), atol=1e-5)
  plain = fn(model, backbone, inputs, mask, config=config)
  assert (np.asarray(plain.tokens) != np.asarray(folded.tokens)).any()


@pytest.mark.parametrize("name", ["adapter", "lora"])
def test_bart_decodes_with_a_delta(name):
  model = build_model(BART_CFG)
  backbone = random_params(model)
  delta = _random_delta(name, BART_CFG, model, backbone)
  src = jnp.asarray(np.random.RandomState(1).randint(3, BART_CFG.vocab_size, (2, 7)), jnp.int32)
  ours = np.asarray(greedy_search(model, backbone, src, config=CONFIG, delta=delta).tokens)
  # Uncached: the full encoder-decoder forward over the decoder start + tokens so far.
  run = jax.jit(lambda p, d, tgt: model.apply({"params": p}, src, tgt, delta=d))
  tgt = jnp.full((2, N + 1), BART_CFG.decoder_start_token_id, jnp.int32)
  for t in range(N):
    tgt = tgt.at[:, t + 1].set(jnp.argmax(run(backbone, delta, tgt)[:, t], -1))
  np.testing.assert_array_equal(ours, np.asarray(tgt[:, 1:]))
  plain = np.asarray(greedy_search(model, backbone, src, config=CONFIG).tokens)
  assert (ours != plain).any()
