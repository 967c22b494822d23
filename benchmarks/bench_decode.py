"""Batched greedy decoding with a kv prefix in the cache vs without one.

Uses `prefix_jax.decode.greedy_search` and the random weights of `benchmarks.decode_prefix`
(`random_params`); unlike that script's best-of-N, the parent interleaves the two variants
and takes medians. No EOS is set, so every row generates exactly `new_tokens` tokens.
"""
from __future__ import annotations

import functools
import json
import time

import numpy as np


@functools.lru_cache(maxsize=2)
def _model_and_params(shape_json: str, seed: int):
  # Both variants of a worker share one copy of the weights.
  from benchmarks.decode_prefix import random_params
  from prefix_jax.models import ModelConfig, build_model
  cfg = ModelConfig(**json.loads(shape_json))
  model = build_model(cfg)
  return model, random_params(model, seed)


class DecodeJob:
  """One variant (`with_prefix` or not); `run()` times one `greedy_search` call."""

  def __init__(self, *, shape: dict, batch: int, src_len: int, new_tokens: int, prefix_len: int,
               with_prefix: bool, seed: int = 0):
    import jax.numpy as jnp
    from prefix_jax.decode import DecodeConfig
    from prefix_jax.prefixes import Prefix
    self._model, self._params = _model_and_params(json.dumps(shape, sort_keys=True), seed)
    cfg = self._model.cfg
    rng = np.random.default_rng(seed + 1)
    self._inputs = jnp.asarray(rng.integers(0, cfg.vocab_size, (batch, src_len)), jnp.int32)
    # Left padding of up to half the prompt, as batched generation of real prompts has.
    pad = rng.integers(0, src_len // 2, (batch, 1))
    self._mask = jnp.asarray(np.arange(src_len)[None] >= pad)
    self._prefix = None
    if with_prefix:
      kv = (cfg.num_layers, prefix_len, cfg.num_kv_heads, cfg.head_dim)
      self._prefix = Prefix(keys=jnp.asarray(rng.standard_normal(kv, np.float32)),
                            values=jnp.asarray(rng.standard_normal(kv, np.float32)))
    self._config = DecodeConfig(max_new_tokens=new_tokens)
    self._tokens = float(batch * new_tokens)
    self.info = {"batch": batch, "src_len": src_len, "new_tokens": new_tokens,
                 "prefix_len": prefix_len if with_prefix else 0}

  def run(self) -> dict:
    from prefix_jax.decode import greedy_search
    start = time.perf_counter()
    out = greedy_search(self._model, self._params, self._inputs, self._mask, self._prefix,
                        config=self._config)
    out.tokens.block_until_ready()
    return {"seconds": time.perf_counter() - start, "tokens": self._tokens}
