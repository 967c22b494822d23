"""Shared by the serving tests: tiny-llama prefixes exported to files, and the reference
decoding of one request alone (the decode API on the unpadded prefix, batch of one)."""
from __future__ import annotations

import functools
import shutil

import jax
import numpy as np

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


def write_tiny_llama(folder) -> str:
  """A random 2-layer llama in HF format with GPT-2's tokenizer, weights of std 0.3 so that
  greedy outputs vary with the prefix and the source (the `tiny-llama` init is nearly
  constant). The commands load it as `--model FOLDER`."""
  import torch
  import transformers
  cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, intermediate_size=64, vocab_size=50257,
                                 max_position_embeddings=256, initializer_range=0.3,
                                 tie_word_embeddings=True, bos_token_id=50256,
                                 eos_token_id=50256)
  torch.manual_seed(0)
  transformers.LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
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


def decode_alone(model_name: str, path: str, source: str, max_tokens: int,
                 beams: int = 1) -> tuple[str, int]:
  """(text, generated token count) of one request decoded on its own."""
  cfg, model, params, tok = backbone(model_name)
  spec, prefix_params, _ = load_prefix(path, cfg)
  ids = tok.encode(" " + source) + separator_ids(tok)
  config = DecodeConfig(max_new_tokens=max_tokens, num_beams=beams, eos_id=tok.eos_id,
                        pad_id=tok.eos_id)
  out = generate(model, params, np.asarray([ids], np.int32), None,
                 materialize(spec, cfg, prefix_params), config=config)
  n = int(out.lengths[0])
  return tok.decode(np.asarray(out.tokens[0, :n]).tolist()), n
