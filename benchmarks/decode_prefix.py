"""Tokens/s of batched greedy decoding with a prefix in the cache vs without one.

    python -m benchmarks.decode_prefix [--batch 4] [--src-len 32] [--new-tokens 16]

Runs a random SmolLM2-135M-shaped llama (numbers are printed, never asserted). The first
call of each variant compiles; the best of `--repeats` later calls is reported.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from prefix_jax.decode.config import DecodeConfig
from prefix_jax.decode.greedy import greedy_search
from prefix_jax.models import ModelConfig, build_model
from prefix_jax.prefixes.types import Prefix
from prefix_jax.weights.host_arrays import aligned_empty

SMOLLM2_135M = ModelConfig(arch="llama", vocab_size=49152, hidden_size=576, num_layers=30,
                           num_heads=9, num_kv_heads=3, intermediate_size=1536,
                           max_positions=8192, tie_embeddings=True, rope_theta=100000.0)


def random_params(model, seed: int = 0) -> dict:
  """Normal(0, 0.02) weights, unit norm scales, without running (compiling) `model.init`."""
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))
  rng = np.random.default_rng(seed)

  def leaf(path, x):
    if "scale" in jax.tree_util.keystr(path):
      return jnp.ones(x.shape, x.dtype)
    # Drawn into an aligned buffer and scaled in place, so that `device_put` adopts it (see
    # `weights.host_arrays`): no leaf is ever held twice.
    values = rng.standard_normal(x.shape, np.float32, out=aligned_empty(x.shape, np.float32))
    values *= np.float32(0.02)
    return jax.device_put(values) if x.dtype == np.float32 else jnp.asarray(values, x.dtype)

  return jax.tree_util.tree_map_with_path(leaf, shapes["params"])


def run_bench(cfg: ModelConfig = SMOLLM2_135M, *, batch: int = 4, src_len: int = 32,
              new_tokens: int = 16, prefix_len: int = 10, repeats: int = 2,
              seed: int = 0) -> dict[str, float]:
  """Prints and returns generated tokens/s for 'no prefix' and 'kv prefix' (steady state)."""
  model = build_model(cfg)
  params = random_params(model, seed)
  rng = np.random.default_rng(seed + 1)
  inputs = jnp.asarray(rng.integers(0, cfg.vocab_size, (batch, src_len)), jnp.int32)
  mask = jnp.asarray(np.arange(src_len)[None] >= rng.integers(0, src_len // 2, (batch, 1)))
  kv_shape = (cfg.num_layers, prefix_len, cfg.num_kv_heads, cfg.head_dim)
  prefix = Prefix(keys=jnp.asarray(rng.standard_normal(kv_shape, np.float32)),
                  values=jnp.asarray(rng.standard_normal(kv_shape, np.float32)))
  config = DecodeConfig(max_new_tokens=new_tokens)  # no EOS: every row runs to the end
  print(f"backend {jax.default_backend()}, {cfg.num_layers} layers x {cfg.hidden_size}, "
        f"vocab {cfg.vocab_size}; batch {batch}, source {src_len}, {new_tokens} new tokens, "
        f"prefix {prefix_len}")
  results = {}
  for name, p in (("no prefix", None), ("kv prefix", prefix)):
    start = time.perf_counter()
    greedy_search(model, params, inputs, mask, p, config=config).tokens.block_until_ready()
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      greedy_search(model, params, inputs, mask, p, config=config).tokens.block_until_ready()
      best = min(best, time.perf_counter() - start)
    results[name] = batch * new_tokens / best
    print(f"{name:>10}: {results[name]:9.1f} tokens/s  ({best * 1e3:.0f} ms per batch; first "
          f"call incl. compile {compile_s:.1f} s)")
  print(f"kv prefix / no prefix: {results['kv prefix'] / results['no prefix']:.3f}")
  return results


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--src-len", type=int, default=32)
  parser.add_argument("--new-tokens", type=int, default=16)
  parser.add_argument("--prefix-len", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  run_bench(batch=args.batch, src_len=args.src_len, new_tokens=args.new_tokens,
            prefix_len=args.prefix_len, repeats=args.repeats, seed=args.seed)


if __name__ == "__main__":
  main()
