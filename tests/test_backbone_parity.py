"""Our GPT-2 and LLaMA match HF transformers (PyTorch) on random-weight checkpoints."""
import jax.numpy as jnp
import numpy as np
import pytest

import hf_refs
from prefix_jax.models import build_model
from prefix_jax.weights.hf import load_hf_dir

TOL = 1e-4


def _ours(path):
  cfg, params, _ = load_hf_dir(path)
  return cfg, build_model(cfg), params


@pytest.mark.parametrize("arch", ["gpt2", "llama", "llama_tied"])
def test_logits_match_transformers(tmp_path, arch):
  if arch == "gpt2":
    ref = hf_refs.tiny_gpt2(tmp_path)
  else:
    ref = hf_refs.tiny_llama(tmp_path, tie=arch == "llama_tied")
  cfg, model, params = _ours(tmp_path)
  if arch.startswith("llama"):
    assert cfg.num_kv_heads < cfg.num_heads  # GQA really exercised
  ids = np.random.RandomState(0).randint(0, cfg.vocab_size, (2, 11))
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(ids)))
  np.testing.assert_allclose(ours, hf_refs.torch_logits(ref, ids), atol=TOL, rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_matches_transformers(tmp_path, arch, side):
  ref = hf_refs.tiny_gpt2(tmp_path) if arch == "gpt2" else hf_refs.tiny_llama(tmp_path)
  cfg, model, params = _ours(tmp_path)
  ids = np.random.RandomState(1).randint(0, cfg.vocab_size, (3, 9))
  lengths = [9, 6, 3]
  mask = np.zeros_like(ids, bool)
  for b, n in enumerate(lengths):
    if side == "right":
      mask[b, :n] = True
    else:
      mask[b, 9 - n:] = True
  pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(ids), mask=jnp.asarray(mask)))
  theirs = hf_refs.torch_logits(ref, ids, mask=mask, position_ids=pos)
  np.testing.assert_allclose(ours[mask], theirs[mask], atol=TOL, rtol=0)
  # And each padded row equals the unpadded sequence run alone.
  for b, n in enumerate(lengths):
    alone = np.asarray(model.apply({"params": params}, jnp.asarray(ids[b][mask[b]][None])))
    np.testing.assert_allclose(ours[b][mask[b]], alone[0], atol=1e-5, rtol=0)
