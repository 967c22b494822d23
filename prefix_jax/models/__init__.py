"""Frozen backbones. `build_model(cfg)` returns the Flax module for an architecture."""
from __future__ import annotations

import jax.numpy as jnp

from prefix_jax.models.config import ModelConfig
from prefix_jax.models.decoder import DecoderLM, KVCache
from prefix_jax.models.remat import check_remat


def build_model(cfg: ModelConfig, dtype=jnp.float32, remat: str = "none"):
  """The Linen module for `cfg.arch`; params are passed to `.apply`, never stored in it.

  `remat` ('none', 'dots', 'full'; see `models.remat`) sets what each transformer block (of
  every architecture) saves for the backward pass; it changes memory, not results."""
  check_remat(remat)
  if cfg.arch == "llama":
    from prefix_jax.models.llama import Llama
    return Llama(cfg, dtype, remat)
  if cfg.arch == "gpt2":
    from prefix_jax.models.gpt2 import GPT2
    return GPT2(cfg, dtype, remat)
  if cfg.arch == "bert":
    from prefix_jax.models.bert import Bert
    return Bert(cfg, dtype, remat)
  if cfg.arch == "bart":
    from prefix_jax.models.bart import Bart
    return Bart(cfg, dtype, remat)
  raise ValueError(f"unknown architecture '{cfg.arch}' (known: llama, gpt2, bert, bart)")


__all__ = ["ModelConfig", "DecoderLM", "KVCache", "build_model"]
