"""Trainable prefixes of an encoder-decoder (BART): one parameter tree per attention kind.

Li & Liang's BART runs train three prefixes with their own parameters (and, with the MLP
reparameterization, their own MLPs): encoder self-attention, decoder self-attention and
decoder cross-attention. The tree is `{'encoder': P, 'decoder': P, 'cross': P}`, each `P` the
single-stack tree of `params.py` sized for its stack's layers (encoder: `cfg.num_layers`,
decoder and cross: `cfg.num_decoder_layers`). A prompt (method 'prompt') exists only on the
encoder input. The `*_for` functions dispatch on `cfg.arch`, so callers need not care.
"""
from __future__ import annotations

import jax

from prefix_jax.models.config import ModelConfig
from prefix_jax.prefixes.params import check_params, fold_reparam, init_prefix, materialize
from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
from prefix_jax.prefixes.spec import PrefixSpec
from prefix_jax.prefixes.types import PrefixShapeError


def is_seq2seq_cfg(cfg: ModelConfig) -> bool:
  return cfg.arch == "bart"


def seq2seq_parts(spec: PrefixSpec) -> tuple[str, ...]:
  """The attentions a spec prefixes: all three, or only the encoder input for a prompt."""
  return ("encoder",) if spec.method == "prompt" else ("encoder", "decoder", "cross")


def part_cfg(cfg: ModelConfig, part: str) -> ModelConfig:
  """The config whose `num_layers` is the stack that part lives in."""
  if part == "encoder":
    return cfg
  return cfg.replace(num_layers=cfg.num_decoder_layers or cfg.num_layers)


def init_prefix_for(spec: PrefixSpec, cfg: ModelConfig, rng, **kwargs) -> dict:
  """`init_prefix` for any backbone; an encoder-decoder gets one tree per part."""
  if not is_seq2seq_cfg(cfg):
    return init_prefix(spec, cfg, rng, **kwargs)
  if spec.init != "random":
    raise PrefixShapeError(f"prefix init '{spec.init}' is not defined for an encoder-decoder "
                           "(use prefix.init='random')")
  if spec.placement != "prefix":
    raise PrefixShapeError("an encoder-decoder takes only prefix.placement='prefix'")
  parts = seq2seq_parts(spec)
  keys = jax.random.split(rng, len(parts))
  return {p: init_prefix(spec, part_cfg(cfg, p), k) for p, k in zip(parts, keys)}


def materialize_for(spec: PrefixSpec, cfg: ModelConfig, params: dict):
  """`materialize` for any backbone; an encoder-decoder gets a `Seq2SeqPrefix`."""
  if not is_seq2seq_cfg(cfg):
    return materialize(spec, cfg, params)
  return Seq2SeqPrefix(**{p: materialize(spec, part_cfg(cfg, p), params[p])
                          for p in seq2seq_parts(spec)})


def fold_reparam_for(spec: PrefixSpec, cfg: ModelConfig, params: dict):
  """`fold_reparam` for any backbone (each part's MLP run once)."""
  if not is_seq2seq_cfg(cfg):
    return fold_reparam(spec, cfg, params)
  folded = {p: fold_reparam(spec, part_cfg(cfg, p), params[p])[1] for p in seq2seq_parts(spec)}
  return spec.replace(reparam="none"), folded


def check_params_for(spec: PrefixSpec, cfg: ModelConfig, params: dict) -> None:
  """`check_params` for any backbone; names the missing or extra part."""
  if not is_seq2seq_cfg(cfg):
    return check_params(spec, cfg, params)
  want = set(seq2seq_parts(spec))
  if set(params) != want:
    raise PrefixShapeError(f"encoder-decoder prefix has parts {sorted(params)}, spec {spec} "
                           f"expects {sorted(want)}")
  for p in want:
    check_params(spec, part_cfg(cfg, p), params[p])
