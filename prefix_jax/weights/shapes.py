"""The backbone's parameter shapes, read off the Flax model, and the check every loader runs.

`expected_shapes(cfg)` traces `model.init` with `jax.eval_shape` (no FLOPs, no memory), so the
shapes a loader checks against can never disagree with the model that consumes the parameters.
Parameter names are '/'-joined paths of our tree, e.g. 'layers_0/attn/q_proj/kernel'.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import traverse_util

from prefix_jax.models import build_model
from prefix_jax.models.config import ModelConfig
from prefix_jax.weights.errors import WeightsError


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
  """{parameter name: shape} of a freshly initialised model of `cfg`."""
  # Keyed by repr too: ModelConfig equality ignores `extra`, which can change the tree (pooler).
  return dict(_traced_shapes(repr(cfg), cfg))


@functools.lru_cache(maxsize=16)
def _traced_shapes(_key: str, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
  model = build_model(cfg)
  tokens = jnp.zeros((1, 2), jnp.int32)
  tree = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), tokens))["params"]
  return _shapes(tree)


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def check_params(params: dict, cfg: ModelConfig, source) -> None:
  """Raises WeightsError naming `source` and the first missing, misshapen or extra array."""
  want = expected_shapes(cfg)
  have = _shapes(params)
  for name, shape in want.items():
    if name not in have:
      raise WeightsError(f"{source}: parameter {name} missing (config: num_layers="
                         f"{cfg.num_layers}, hidden_size={cfg.hidden_size})")
    if have[name] != shape:
      raise WeightsError(f"{source}: parameter {name} has shape {have[name]}, "
                         f"config expects {shape}")
  extra = sorted(set(have) - set(want))
  if extra:
    raise WeightsError(f"{source}: unexpected parameters {extra[:3]} for config num_layers="
                       f"{cfg.num_layers}")
