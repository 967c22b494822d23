"""Tiny random backbones for fast tests (norm scales and biases randomised too)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from prefix_jax.models import ModelConfig, build_model

CONFIGS = {
    "llama": ModelConfig(arch="llama", vocab_size=61, hidden_size=32, num_layers=3, num_heads=4,
                         num_kv_heads=2, intermediate_size=48, max_positions=64, norm_eps=1e-6),
    "gpt2": ModelConfig(arch="gpt2", vocab_size=61, hidden_size=32, num_layers=3, num_heads=4,
                        intermediate_size=64, max_positions=64, activation="gelu_new"),
}


def tiny_model(arch: str, seed: int = 0):
  """(cfg, model, params) with every parameter random (norm scales around 1)."""
  cfg = CONFIGS[arch]
  model = build_model(cfg)
  # jit: an eager init dispatches every op on its own (seconds per architecture).
  params = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(jax.random.PRNGKey(seed + 100), len(leaves))
  new = []
  for (path, x), k in zip(leaves, keys):
    name = jax.tree_util.keystr(path)
    noise = 0.1 * jax.random.normal(k, x.shape)
    # Weights 5x the usual init (std 0.1): the tiny model is expressive enough to memorise.
    new.append(x + noise if ("scale" in name or "bias" in name) else 5.0 * x)
  return cfg, model, jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), new)
