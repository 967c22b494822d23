"""Our kv prefix == HF peft PrefixTuningConfig (no projection) given the same arrays.

Tested against peft 0.21 / transformers 5.x (pinned by the test extras at install time). peft's
prompt encoder holds E [Lp, L*2*Hkv*D], viewed as [Lp, L, 2 (key, value), Hkv, D]; it passes
them as past_key_values, so real tokens start at position Lp, as in our layout.
"""
import jax.numpy as jnp
import numpy as np
import peft
import pytest
import torch

import hf_refs
from prefix_jax.models import build_model
from prefix_jax.prefixes import Prefix
from prefix_jax.weights.hf import load_hf_dir


def peft_kv_to_prefix(emb: np.ndarray, cfg) -> Prefix:
  kv = emb.reshape(emb.shape[0], cfg.num_layers, 2, cfg.num_kv_heads, cfg.head_dim)
  return Prefix(keys=jnp.asarray(kv[:, :, 0].transpose(1, 0, 2, 3)),
                values=jnp.asarray(kv[:, :, 1].transpose(1, 0, 2, 3)))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_kv_prefix_matches_peft_prefix_tuning(tmp_path, arch):
  ref = hf_refs.tiny_gpt2(tmp_path) if arch == "gpt2" else hf_refs.tiny_llama(tmp_path)
  cfg, params, _ = load_hf_dir(tmp_path)
  model = build_model(cfg)
  lp = 4
  pm = peft.get_peft_model(ref, peft.PrefixTuningConfig(
      task_type="CAUSAL_LM", num_virtual_tokens=lp, prefix_projection=False))
  emb = pm.prompt_encoder["default"].embedding.weight
  values = np.random.RandomState(0).randn(*emb.shape).astype(np.float32)
  with torch.no_grad():
    emb.copy_(torch.tensor(values))
  ids = np.random.RandomState(1).randint(0, cfg.vocab_size, (2, 7))
  mask = np.ones_like(ids, dtype=bool)
  mask[1, 5:] = False
  with torch.no_grad():
    theirs = pm(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask).long()).logits
  ours = model.apply({"params": params}, jnp.asarray(ids), prefix=peft_kv_to_prefix(values, cfg),
                     mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(ours)[mask], theirs.numpy()[mask], atol=1e-4, rtol=0)
  # Sanity: the prefix matters (so the comparison above is not vacuous).
  plain = model.apply({"params": params}, jnp.asarray(ids))
  assert np.abs(np.asarray(plain - ours)[mask]).max() > 1e-2
