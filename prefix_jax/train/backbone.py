"""The frozen backbone a run uses: pretrained weights, or a tiny random model of an arch."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from prefix_jax.models import ModelConfig, build_model

TINY = {  # tiny random backbones of each architecture, for tests and smoke runs
    "tiny-llama": dict(arch="llama", hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                       intermediate_size=64, max_positions=512, tie_embeddings=True,
                       rope_theta=100000.0),
    "tiny-gpt2": dict(arch="gpt2", hidden_size=32, num_layers=2, num_heads=4,
                      intermediate_size=64, max_positions=512, activation="gelu_new"),
    "tiny-bart": dict(arch="bart", hidden_size=32, num_layers=2, num_heads=4,
                      intermediate_size=64, max_positions=512, activation="gelu",
                      tie_embeddings=True, eos_token_id=50256, decoder_start_token_id=50256),
    "tiny-bert": dict(arch="bert", hidden_size=32, num_layers=2, num_heads=4,
                      intermediate_size=64, max_positions=512, activation="gelu",
                      type_vocab_size=2, norm_eps=1e-12),
}


def load_backbone(name: str, seed: int = 0, dtype: str = "float32"):
  """`(ModelConfig, params, tokenizer)` for a pretrained source or a `tiny-<arch>` name.

  Tiny models use the GPT-2 BPE tokenizer from the shared folder (vocabulary 50257).
  """
  if name in TINY:
    from prefix_jax.weights import gpt2_tokenizer
    tokenizer = gpt2_tokenizer()
    cfg, params = _tiny(name, seed, tokenizer.vocab_size)
    return cfg, jax.tree_util.tree_map(np.copy, params), tokenizer
  from prefix_jax.weights import load_pretrained
  return load_pretrained(name, dtype=dtype)


@functools.lru_cache(maxsize=16)
def _tiny(name: str, seed: int, vocab_size: int):
  """A tiny model's config and random weights, made once per process (callers get copies):
  the inline sweep launcher and the tests load the same few many times."""
  cfg = ModelConfig(vocab_size=vocab_size, **TINY[name])
  # One compiled program: an eager init dispatches and compiles every op on its own.
  init = jax.jit(build_model(cfg).init)
  params = init(jax.random.PRNGKey(seed), jnp.zeros((1, 2), jnp.int32))["params"]
  return cfg, jax.tree_util.tree_map(np.asarray, params)
