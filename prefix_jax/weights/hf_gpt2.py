"""HF GPT-2 name map (GPT2Model / GPT2LMHeadModel; Conv1D weights are already [in, out])."""
from __future__ import annotations

from prefix_jax.models.config import ModelConfig
from prefix_jax.weights import hf


def config_from_hf(raw: dict) -> ModelConfig:
  hidden = raw["n_embd"]
  return ModelConfig(
      arch="gpt2", vocab_size=raw["vocab_size"], hidden_size=hidden, num_layers=raw["n_layer"],
      num_heads=raw["n_head"], intermediate_size=raw.get("n_inner") or 4 * hidden,
      max_positions=raw["n_positions"], norm_eps=raw.get("layer_norm_epsilon", 1e-5),
      tie_embeddings=True, activation=raw.get("activation_function", "gelu_new"),
      bos_token_id=raw.get("bos_token_id"), eos_token_id=raw.get("eos_token_id"))


def param_map(cfg: ModelConfig, names: set[str]):
  i = hf.identity
  # GPT2LMHeadModel prefixes names with 'transformer.'; a bare GPT2Model does not.
  pre = "transformer." if any(n.startswith("transformer.") for n in names) else ""
  m = [(pre + "wte.weight", ("wte", "embedding"), i), (pre + "wpe.weight", ("wpe", "embedding"), i),
       (pre + "ln_f.weight", ("ln_f", "scale"), i), (pre + "ln_f.bias", ("ln_f", "bias"), i)]
  for l in range(cfg.num_layers):
    src, dst = f"{pre}h.{l}.", f"h_{l}"
    for ln in ("ln_1", "ln_2"):
      m += [(src + f"{ln}.weight", (dst, ln, "scale"), i), (src + f"{ln}.bias", (dst, ln, "bias"), i)]
    for mod, sub in (("attn", "c_attn"), ("attn", "c_proj"), ("mlp", "c_fc"), ("mlp", "c_proj")):
      m += [(src + f"{mod}.{sub}.weight", (dst, mod, sub, "kernel"), i),
            (src + f"{mod}.{sub}.bias", (dst, mod, sub, "bias"), i)]
  return m


hf.register("gpt2", hf.HFArch(("gpt2",), config_from_hf, param_map))
