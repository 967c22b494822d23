"""Our kv prefix == HF peft PrefixTuningConfig given the same arrays (with and without the MLP).

Tested against peft 0.21 / transformers 5.x (pinned by the test extras at install time). peft's
prompt encoder holds E [Lp, L*2*Hkv*D], viewed as [Lp, L, 2 (key, value), Hkv, D]; it passes
them as past_key_values, so real tokens start at position Lp, as in our layout.
"""
import jax
import jax.numpy as jnp
import numpy as np
import peft
import pytest
import torch

import hf_refs
from prefix_jax.models import build_model
from prefix_jax.prefixes import Prefix, PrefixSpec, init_prefix, materialize
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


def _copy_mlp_into_peft(params: dict, encoder) -> None:
  """Our MLP reparameterization's weights into peft's PrefixEncoder (Linear-Tanh-Linear;
  torch Linear weights are [out, in], our kernels [in, out])."""
  mlp = params["mlp"]
  with torch.no_grad():
    encoder.embedding.weight.copy_(torch.tensor(np.asarray(params["embedding"])))
    for i, name in ((0, "w1"), (2, "w2")):
      encoder.transform[i].weight.copy_(torch.tensor(np.asarray(mlp[name]["kernel"]).T))
      encoder.transform[i].bias.copy_(torch.tensor(np.asarray(mlp[name]["bias"])))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_mlp_reparameterization_matches_peft_prefix_projection(tmp_path, arch):
  """Our kv prefix with reparam='mlp' == peft's PrefixTuningConfig(prefix_projection=True)
  given the same embedding and MLP weights: an independent reference for the MLP itself
  (its activation, its bias terms, the layout of its output). LLaMA without GQA: peft sizes
  the MLP input by the K/V width, ours by the hidden size; they agree when the two are equal."""
  ref = (hf_refs.tiny_gpt2(tmp_path) if arch == "gpt2" else
         hf_refs.tiny_llama(tmp_path, kv_heads=4))
  cfg, backbone, _ = load_hf_dir(tmp_path)
  spec = PrefixSpec(method="kv", length=3, reparam="mlp", mlp_hidden=12, init_std=1.0)
  params = init_prefix(spec, cfg, jax.random.PRNGKey(0))
  # Random biases too (init sets them to zero), so a dropped bias cannot pass.
  bias = jax.random.split(jax.random.PRNGKey(1), 2)
  for key, name in zip(bias, ("w1", "w2")):
    b = params["mlp"][name]["bias"]
    params["mlp"][name]["bias"] = 0.5 * jax.random.normal(key, b.shape)
  pm = peft.get_peft_model(ref, peft.PrefixTuningConfig(
      task_type="CAUSAL_LM", num_virtual_tokens=spec.length, prefix_projection=True,
      encoder_hidden_size=spec.mlp_hidden))
  _copy_mlp_into_peft(params, pm.prompt_encoder["default"])
  ids = np.random.RandomState(1).randint(0, cfg.vocab_size, (2, 6))
  with torch.no_grad():
    theirs = pm(input_ids=torch.tensor(ids)).logits.numpy()
  model = build_model(cfg)
  ours = model.apply({"params": backbone}, jnp.asarray(ids),
                     prefix=materialize(spec, cfg, params))
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=0)
  plain = model.apply({"params": backbone}, jnp.asarray(ids))
  assert np.abs(np.asarray(plain - ours)).max() > 1e-2  # the prefix matters
