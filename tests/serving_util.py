"""Shared by the serving tests: tiny-llama prefixes exported to files, and the reference
decoding of one request alone (the decode API on the unpadded prefix, batch of one)."""
from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import jax
import numpy as np
from safetensors.numpy import save_file

from prefix_jax import paths
from prefix_jax.data.encode import separator_ids
from prefix_jax.decode import DecodeConfig, generate
from prefix_jax.models import build_model
from prefix_jax.prefixes import PrefixSpec, init_prefix, materialize
from prefix_jax.train.backbone import load_backbone
from prefix_jax.train.export import export_prefix, load_prefix

# Sources of two token lengths (3 and 6 GPT-2 tokens): rows of a batch are left-padded, yet
# the reference decodes alone compile only a few shapes.
SOURCES = ["a b c", "one two three", "the cat sat on a mat", "red green blue"]


def write_tiny_llama(folder, *, hidden=32, layers=2, heads=4, kv_heads=2, ff=64) -> str:
  """A random llama in HF format (config.json + model.safetensors, written with numpy: no
  torch) with GPT-2's tokenizer; weights of std 0.3, so that greedy outputs vary with the
  prefix and the source (the `tiny-llama` init is nearly constant). The commands load it as
  `--model FOLDER`."""
  folder = Path(folder)
  vocab, head_dim = 50257, hidden // heads
  config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": vocab,
            "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "intermediate_size": ff,
            "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "tie_word_embeddings": True, "bos_token_id": 50256, "eos_token_id": 50256}
  rng = np.random.default_rng(0)
  normal = lambda *shape: (0.3 * rng.standard_normal(shape)).astype(np.float32)
  tensors = {"model.embed_tokens.weight": normal(vocab, hidden),
             "model.norm.weight": 1 + normal(hidden) / 3}
  for l in range(layers):
    pre = f"model.layers.{l}."
    shapes = {"self_attn.q_proj": (heads * head_dim, hidden),
              "self_attn.k_proj": (kv_heads * head_dim, hidden),
              "self_attn.v_proj": (kv_heads * head_dim, hidden),
              "self_attn.o_proj": (hidden, heads * head_dim), "mlp.gate_proj": (ff, hidden),
              "mlp.up_proj": (ff, hidden), "mlp.down_proj": (hidden, ff)}
    tensors.update({f"{pre}{name}.weight": normal(*shape) for name, shape in shapes.items()})
    tensors.update({f"{pre}{norm}.weight": 1 + normal(hidden) / 3
                    for norm in ("input_layernorm", "post_attention_layernorm")})
  save_file(tensors, str(folder / "model.safetensors"))
  (folder / "config.json").write_text(json.dumps(config))
  shutil.copy(paths.shared_path("models", "gpt2-tokenizer", "tokenizer.json"), folder)
  return str(folder)


@functools.lru_cache(maxsize=None)
def backbone(name: str):
  """(cfg, model, params, tokenizer) as the commands load them."""
  cfg, params, tok = load_backbone(name, seed=0)
  return cfg, build_model(cfg), params, tok


def export_prefixes(folder, count: int, model: str, *, methods=("kv",), lengths=(4, 6),
                    std: float = 1.0) -> dict[str, str]:
  """`count` random prefixes saved with `export_prefix`; {name: path}."""
  cfg = backbone(model)[0]
  out = {}
  for i in range(count):
    spec = PrefixSpec(method=methods[i % len(methods)], length=lengths[i % len(lengths)],
                      init_std=std)
    path = folder / f"task{i}.safetensors"
    export_prefix(path, spec, cfg, init_prefix(spec, cfg, jax.random.PRNGKey(100 + i)))
    out[f"task{i}"] = str(path)
  return out


def decode_alone(model_name: str, path: str | None, source: str, max_tokens: int,
                 beams: int = 1) -> tuple[str, int]:
  """(text, generated token count) of one request decoded on its own (path None: the bare
  backbone, no prefix)."""
  cfg, model, params, tok = backbone(model_name)
  prefix = None
  if path is not None:
    spec, prefix_params, _ = load_prefix(path, cfg)
    prefix = materialize(spec, cfg, prefix_params)
  ids = tok.encode(" " + source) + separator_ids(tok)
  config = DecodeConfig(max_new_tokens=max_tokens, num_beams=beams, eos_id=tok.eos_id,
                        pad_id=tok.eos_id)
  out = generate(model, params, np.asarray([ids], np.int32), None, prefix, config=config)
  n = int(out.lengths[0])
  return tok.decode(np.asarray(out.tokens[0, :n]).tolist()), n
