"""HF LLaMA name map (LlamaForCausalLM; also SmolLM2 and other llama-architecture models)."""
from __future__ import annotations

from prefix_jax.models.config import ModelConfig
from prefix_jax.weights import hf


def config_from_hf(raw: dict) -> ModelConfig:
  return ModelConfig(
      arch="llama", vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"],
      num_layers=raw["num_hidden_layers"], num_heads=raw["num_attention_heads"],
      num_kv_heads=raw.get("num_key_value_heads"), head_dim=raw.get("head_dim"),
      intermediate_size=raw["intermediate_size"],
      max_positions=raw.get("max_position_embeddings", 2048),
      rope_theta=float(raw.get("rope_theta", (raw.get("rope_parameters") or {}).get(
          "rope_theta", 10000.0))),
      norm_eps=raw.get("rms_norm_eps", 1e-6), tie_embeddings=raw.get("tie_word_embeddings", False),
      activation="silu", bos_token_id=raw.get("bos_token_id"), eos_token_id=_first(
          raw.get("eos_token_id")), pad_token_id=raw.get("pad_token_id"))


def _first(x):
  return x[0] if isinstance(x, list) else x


def param_map(cfg: ModelConfig, names: set[str]):
  t, i = hf.transpose, hf.identity
  m = [("model.embed_tokens.weight", ("embed", "embedding"), i),
       ("model.norm.weight", ("final_norm", "scale"), i)]
  if not cfg.tie_embeddings:
    m.append(("lm_head.weight", ("lm_head", "kernel"), t))
  for l in range(cfg.num_layers):
    src, dst = f"model.layers.{l}.", f"layers_{l}"
    m += [(src + "input_layernorm.weight", (dst, "attn_norm", "scale"), i),
          (src + "post_attention_layernorm.weight", (dst, "mlp_norm", "scale"), i)]
    for p in ("q_proj", "k_proj", "v_proj", "o_proj"):
      m.append((src + f"self_attn.{p}.weight", (dst, "attn", p, "kernel"), t))
    for p in ("gate_proj", "up_proj", "down_proj"):
      m.append((src + f"mlp.{p}.weight", (dst, "mlp", p, "kernel"), t))
  return m


hf.register("llama", hf.HFArch(("llama", "mistral"), config_from_hf, param_map))
