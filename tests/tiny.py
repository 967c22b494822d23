"""Tiny random backbones for fast tests (norm scales and biases randomised too)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from prefix_jax.models import ModelConfig, build_model

CONFIGS = {
    "llama": ModelConfig(arch="llama", vocab_size=61, hidden_size=32, num_layers=3, num_heads=4,
                         num_kv_heads=2, intermediate_size=48, max_positions=64, norm_eps=1e-6),
    "gpt2": ModelConfig(arch="gpt2", vocab_size=61, hidden_size=32, num_layers=3, num_heads=4,
                        intermediate_size=64, max_positions=64, activation="gelu_new"),
}


@functools.lru_cache(maxsize=None)
def tiny_model(arch: str, seed: int = 0):
  """(cfg, model, params) with every parameter random (norm scales around 1). Cached: the
  arrays are immutable, and no test donates a backbone."""
  cfg = CONFIGS[arch]
  model = build_model(cfg)
  # jit: an eager init dispatches (and compiles) every op on its own.
  params = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]
  return cfg, model, jax.jit(_randomize)(params, jax.random.PRNGKey(seed + 100))


def _randomize(params, key):
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  new = []
  for (path, x), k in zip(leaves, keys):
    name = jax.tree_util.keystr(path)
    noise = 0.1 * jax.random.normal(k, x.shape)
    # Weights 5x the usual init (std 0.1): the tiny model is expressive enough to memorise.
    new.append(x + noise if ("scale" in name or "bias" in name) else 5.0 * x)
  return jax.tree_util.tree_unflatten(treedef, new)


_JITTED: dict[int, tuple] = {}


def apply(module, variables, *args, mutable=False, method=None, **kwargs):
  """`module.apply(variables, *args, ...)` compiled as one program: eager applies dispatch
  and compile every op of the model on its own (seconds per call and shape on a tiny model).
  Keyword arguments that are not arrays (`return_hidden`, ...) are static."""
  entry = _JITTED.get(id(module))
  if entry is None:
    def run(variables, args, arrays, mutable, method, static_kw):
      return module.apply(variables, *args, mutable=mutable, method=method, **arrays,
                          **dict(static_kw))
    entry = _JITTED[id(module)] = (
        module, jax.jit(run, static_argnames=("mutable", "method", "static_kw")))
  arrays = {k: v for k, v in kwargs.items() if not isinstance(v, (bool, int, str))}
  static_kw = tuple(sorted((k, v) for k, v in kwargs.items() if k not in arrays))
  mutable = tuple(mutable) if isinstance(mutable, list) else mutable
  return entry[1](variables, args, arrays, mutable=mutable, method=method, static_kw=static_kw)
