"""Random-weight HF reference checkpoints written by `transformers`, loaded through our loader."""
from __future__ import annotations

import numpy as np
import torch
import transformers


def _perturb(model, seed: int):
  # HF initialises norms to 1 and biases to 0; random values make the loader test meaningful.
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn(p.shape, generator=g))
  return model


def tiny_gpt2(tmp_path, seed=0, n_layer=2, n_embd=32, n_head=4, vocab=97, n_positions=64):
  cfg = transformers.GPT2Config(n_embd=n_embd, n_layer=n_layer, n_head=n_head, vocab_size=vocab,
                                n_positions=n_positions, resid_pdrop=0.0, embd_pdrop=0.0,
                                attn_pdrop=0.0, bos_token_id=0, eos_token_id=1)
  torch.manual_seed(seed)
  model = _perturb(transformers.GPT2LMHeadModel(cfg), seed).eval()
  model.save_pretrained(tmp_path, safe_serialization=True)
  return model


def tiny_llama(tmp_path, seed=0, layers=2, hidden=32, heads=4, kv_heads=2, vocab=97, tie=False):
  cfg = transformers.LlamaConfig(hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, num_key_value_heads=kv_heads,
                                 intermediate_size=2 * hidden + 8, vocab_size=vocab,
                                 max_position_embeddings=128, rope_theta=10000.0,
                                 rms_norm_eps=1e-6, tie_word_embeddings=tie,
                                 attn_implementation="eager")
  torch.manual_seed(seed)
  model = _perturb(transformers.LlamaForCausalLM(cfg), seed).eval()
  model.save_pretrained(tmp_path, safe_serialization=True)
  return model


def torch_logits(model, ids, mask=None, position_ids=None, **kw):
  with torch.no_grad():
    out = model(input_ids=torch.tensor(np.asarray(ids)),
                attention_mask=None if mask is None else torch.tensor(np.asarray(mask)).long(),
                position_ids=None if position_ids is None else torch.tensor(
                    np.asarray(position_ids)), **kw)
  return out.logits.float().numpy()
