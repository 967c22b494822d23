"""HF BERT name map (BertModel, BertForSequenceClassification; names with or without 'bert.').

Torch Linear weights are [out, in]; ours are [in, out]. Old checkpoints name LayerNorm params
gamma/beta instead of weight/bias; both are read. The pooler is loaded unless the config's
architectures are all ones transformers builds without it (cfg.extra['pooler']).
"""
from __future__ import annotations

from prefix_jax.models.bert import has_pooler
from prefix_jax.models.config import ModelConfig
from prefix_jax.models.layers import ACTIVATIONS
from prefix_jax.weights import hf


# transformers builds these without a pooler (add_pooling_layer=False).
NO_POOLER = ("BertForMaskedLM", "BertLMHeadModel", "BertForTokenClassification",
             "BertForQuestionAnswering")


def config_from_hf(raw: dict) -> ModelConfig:
  if raw.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError(f"position_embedding_type={raw['position_embedding_type']!r} is not "
                     "supported (only 'absolute')")
  act = raw.get("hidden_act", "gelu")
  if act not in ACTIVATIONS:
    raise ValueError(f"hidden_act={act!r} is not supported (known: {sorted(ACTIVATIONS)})")
  archs = raw.get("architectures") or []
  # Every HF config carries id2label; only a sequence-classification checkpoint has a head.
  has_head = any(a.endswith("ForSequenceClassification") for a in archs)
  pooler = not archs or any(a not in NO_POOLER for a in archs)
  return ModelConfig(
      arch="bert", vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"],
      num_layers=raw["num_hidden_layers"], num_heads=raw["num_attention_heads"],
      intermediate_size=raw["intermediate_size"], max_positions=raw["max_position_embeddings"],
      norm_eps=raw.get("layer_norm_eps", 1e-12), activation=act,
      type_vocab_size=raw.get("type_vocab_size", 2),
      num_labels=len(raw.get("id2label") or {}) if has_head else 0,
      pad_token_id=raw.get("pad_token_id"), bos_token_id=raw.get("bos_token_id"),
      eos_token_id=raw.get("eos_token_id"), extra={"pooler": pooler})


def param_map(cfg: ModelConfig, names: set[str]):
  i, t = hf.identity, hf.transpose
  pre = "bert." if any(n.startswith("bert.") for n in names) else ""

  def norm(src, dst):
    old = f"{src}.gamma" in names and f"{src}.weight" not in names
    w, b = ("gamma", "beta") if old else ("weight", "bias")
    return [(f"{src}.{w}", (*dst, "scale"), i), (f"{src}.{b}", (*dst, "bias"), i)]

  def linear(src, dst):
    return [(f"{src}.weight", (*dst, "kernel"), t), (f"{src}.bias", (*dst, "bias"), i)]

  e = pre + "embeddings."
  m = [(e + "word_embeddings.weight", ("word_embeddings", "embedding"), i),
       (e + "position_embeddings.weight", ("position_embeddings", "embedding"), i)]
  if cfg.type_vocab_size > 0:
    m.append((e + "token_type_embeddings.weight", ("token_type_embeddings", "embedding"), i))
  m += norm(e + "LayerNorm", ("embed_norm",))
  for l in range(cfg.num_layers):
    src, dst = f"{pre}encoder.layer.{l}.", f"layers_{l}"
    for hf_name, ours in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
      m += linear(src + f"attention.self.{hf_name}", (dst, "attn", ours))
    m += linear(src + "attention.output.dense", (dst, "attn", "o_proj"))
    m += norm(src + "attention.output.LayerNorm", (dst, "attn_norm"))
    m += linear(src + "intermediate.dense", (dst, "mlp", "fc1"))
    m += linear(src + "output.dense", (dst, "mlp", "fc2"))
    m += norm(src + "output.LayerNorm", (dst, "mlp_norm"))
  if has_pooler(cfg):
    m += linear(pre + "pooler.dense", ("pooler",))
  if cfg.num_labels > 0:
    m += linear("classifier", ("classifier",))
  return m


# Pre-training heads (masked LM, next sentence) of BertForPreTraining/ForMaskedLM checkpoints,
# and a pooler the config does not use (Google's BertForMaskedLM checkpoints still carry one).
IGNORED = hf.IGNORED_TENSORS + (r"^cls\.", r"^(bert\.)?pooler\.")

hf.register("bert", hf.HFArch(("bert",), config_from_hf, param_map, ignored=IGNORED))
