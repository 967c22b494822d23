"""HF BART name map (BartModel, BartForConditionalGeneration; names with or without 'model.').

With tied embeddings the token table is `shared` (the encoder/decoder `embed_tokens` copies
are tied to it and usually not saved); untied (transformers 5) every table is its own.
`final_logits_bias` is a buffer that some checkpoints lack: then it is zero.
"""
from __future__ import annotations

import numpy as np

from prefix_jax.models.config import ModelConfig
from prefix_jax.models.layers import ACTIVATIONS
from prefix_jax.weights import hf


def config_from_hf(raw: dict) -> ModelConfig:
  for enc, dec in (("encoder_attention_heads", "decoder_attention_heads"),
                   ("encoder_ffn_dim", "decoder_ffn_dim")):
    if raw[enc] != raw[dec]:
      raise ValueError(f"{enc}={raw[enc]} != {dec}={raw[dec]} is not supported")
  act = raw.get("activation_function", "gelu")
  if act not in ACTIVATIONS:
    raise ValueError(f"activation_function={act!r} is not supported (known: "
                     f"{sorted(ACTIVATIONS)})")
  return ModelConfig(
      arch="bart", vocab_size=raw["vocab_size"], hidden_size=raw["d_model"],
      num_layers=raw["encoder_layers"], num_decoder_layers=raw["decoder_layers"],
      num_heads=raw["encoder_attention_heads"], intermediate_size=raw["encoder_ffn_dim"],
      max_positions=raw["max_position_embeddings"], norm_eps=1e-5, activation=act,
      tie_embeddings=raw.get("tie_word_embeddings", True),
      pad_token_id=raw.get("pad_token_id"), bos_token_id=raw.get("bos_token_id"),
      eos_token_id=raw.get("eos_token_id"),
      decoder_start_token_id=raw.get("decoder_start_token_id"),
      extra={"scale_embedding": bool(raw.get("scale_embedding", False))})


def _zeros_like_rows(w):
  return np.zeros((w.shape[0],), np.float32)


def param_map(cfg: ModelConfig, names: set[str]):
  i, t = hf.identity, hf.transpose
  pre = "model." if any(n.startswith("model.") for n in names) else ""

  def norm(src, dst):
    return [(f"{src}.weight", (*dst, "scale"), i), (f"{src}.bias", (*dst, "bias"), i)]

  def linear(src, dst):
    return [(f"{src}.weight", (*dst, "kernel"), t), (f"{src}.bias", (*dst, "bias"), i)]

  def pick(*candidates):  # the first of several names a tied table may be saved under
    return next((n for n in candidates if n in names), candidates[0])

  shared = pick(pre + "shared.weight", pre + "encoder.embed_tokens.weight")
  m = []
  if cfg.tie_embeddings:
    m.append((shared, ("shared", "embedding"), i))
  else:
    # transformers 5 unties all tables; older checkpoints keep one table under `shared`.
    for side in ("encoder", "decoder"):
      m.append((pick(f"{pre}{side}.embed_tokens.weight", shared),
                (side, "embed_tokens", "embedding"), i))
    m.append(("lm_head.weight", ("lm_head", "kernel"), t))
  if "final_logits_bias" in names:
    m.append(("final_logits_bias", ("final_logits_bias",), lambda x: x.reshape(-1)))
  else:
    m.append((shared, ("final_logits_bias",), _zeros_like_rows))
  layers = {"encoder": cfg.num_layers, "decoder": cfg.num_decoder_layers or cfg.num_layers}
  for side, n in layers.items():
    m.append((f"{pre}{side}.embed_positions.weight", (side, "embed_positions", "embedding"), i))
    m += norm(f"{pre}{side}.layernorm_embedding", (side, "layernorm_embedding"))
    attns = [("self_attn", "attn", "attn_norm")]
    if side == "decoder":
      attns.append(("encoder_attn", "cross_attn", "cross_norm"))
    for l in range(n):
      src, dst = f"{pre}{side}.layers.{l}.", (side, f"layers_{l}")
      for hf_attn, ours, ours_norm in attns:
        for p in ("q", "k", "v"):
          m += linear(src + f"{hf_attn}.{p}_proj", (*dst, ours, f"{p}_proj"))
        m += linear(src + f"{hf_attn}.out_proj", (*dst, ours, "o_proj"))
        m += norm(src + f"{hf_attn}_layer_norm", (*dst, ours_norm))
      m += linear(src + "fc1", (*dst, "mlp", "fc1"))
      m += linear(src + "fc2", (*dst, "mlp", "fc2"))
      m += norm(src + "final_layer_norm", (*dst, "mlp_norm"))
  return m


# Copies of a tied token table, and `shared`, which untied models keep but never use.
IGNORED = hf.IGNORED_TENSORS + (r"^(model\.)?shared\.weight$",
                                r"^(model\.)?(encoder|decoder)\.embed_tokens\.weight$")

hf.register("bart", hf.HFArch(("bart",), config_from_hf, param_map, ignored=IGNORED))
