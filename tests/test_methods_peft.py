"""LoRA == peft LoraConfig and LLaMA-Adapter == peft AdaptionPromptConfig, given the same
weights, on tiny random HF checkpoints; zero-initialized LoRA / adapters / gates change
nothing; LoRA folded into the backbone gives the same logits."""
import jax
import jax.numpy as jnp
import numpy as np
import peft
import pytest
import torch

import hf_refs
from prefix_jax.methods import build_method
from prefix_jax.train.method_run import prepare
from prefix_jax.methods.deltas import merge_lora
from prefix_jax.models import build_model
from prefix_jax.models.deltas import Delta
from prefix_jax.train.config_base import apply_arg, base_config
from prefix_jax.weights.hf import load_hf_dir

IDS = np.random.RandomState(1).randint(0, 97, (2, 7))
MASK = np.ones_like(IDS, dtype=bool)
MASK[1, 5:] = False


def _randomize(module, seed):
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in module.named_parameters():
      if "lora_" in name or "adaption_" in name:
        p.copy_(0.3 * torch.randn(p.shape, generator=g))


def _theirs(pm):
  with torch.no_grad():
    return pm(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK).long()).logits.numpy()


def _ours(model, params, delta=None):
  return np.asarray(model.apply({"params": params}, jnp.asarray(IDS), mask=jnp.asarray(MASK),
                                delta=delta))


def _lora_tree(pm, arch, cfg):
  """peft's lora_A [r, in] / lora_B [out, r] -> our {'a': [in, r], 'b': [r, out]} per block."""
  sd = {k: v.detach().numpy() for k, v in pm.state_dict().items() if "lora_" in k}
  tree = {}
  for l in range(cfg.num_layers):
    if arch == "llama":
      pre, block = f"base_model.model.model.layers.{l}.", f"layers_{l}"
      spots = {("attn", "q"): "self_attn.q_proj", ("attn", "v"): "self_attn.v_proj",
               ("mlp", "down"): "mlp.down_proj"}
    else:  # peft's c_attn LoRA: one A, B's thirds are q, k, v
      pre, block = f"base_model.model.transformer.h.{l}.", f"h_{l}"
      spots = {("attn", t): "attn.c_attn" for t in "qkv"}
    for (sub, target), mod in spots.items():
      a = sd[pre + mod + ".lora_A.default.weight"].T
      b = sd[pre + mod + ".lora_B.default.weight"].T
      if arch == "gpt2":
        i = "qkv".index(target) * cfg.hidden_size
        b = b[:, i:i + cfg.hidden_size]
      tree.setdefault(block, {}).setdefault(sub, {}).setdefault("lora", {})[target] = {
          "a": jnp.asarray(a), "b": jnp.asarray(b)}
  return tree


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_matches_peft_and_merges_exactly(tmp_path, arch):
  ref = hf_refs.tiny_llama(tmp_path) if arch == "llama" else hf_refs.tiny_gpt2(tmp_path)
  cfg, params, _ = load_hf_dir(tmp_path)
  model = build_model(cfg)
  targets = ["q_proj", "v_proj", "down_proj"] if arch == "llama" else ["c_attn"]
  pm = peft.get_peft_model(ref, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                target_modules=targets,
                                                fan_in_fan_out=arch == "gpt2"))
  _randomize(pm, 3)
  delta = Delta(_lora_tree(pm, arch, cfg), lora_scale=8 / 4)
  ours = _ours(model, params, delta)
  np.testing.assert_allclose(ours[MASK], _theirs(pm)[MASK], atol=1e-4, rtol=0)
  assert np.abs(ours - _ours(model, params))[MASK].max() > 1e-2  # LoRA matters
  merged = merge_lora(params, delta.tree, delta.lora_scale)
  np.testing.assert_allclose(_ours(model, merged)[MASK], ours[MASK], atol=1e-4, rtol=0)


def test_llama_adapter_matches_peft_adaption_prompt(tmp_path):
  ref = hf_refs.tiny_llama(tmp_path, layers=3)
  cfg, params, _ = load_hf_dir(tmp_path)
  model = build_model(cfg)
  pm = peft.get_peft_model(ref, peft.AdaptionPromptConfig(adapter_len=4, adapter_layers=2,
                                                          task_type="CAUSAL_LM"))
  _randomize(pm, 4)
  tree = {}
  for name, p in pm.named_parameters():
    if "adaption_" in name:
      l = int(name.split("layers.")[1].split(".")[0])
      key = "prompt" if "adaption_prompt" in name else "gate"
      value = p.detach().numpy()
      tree.setdefault(f"layers_{l}", {}).setdefault("attn", {})[key] = jnp.asarray(
          value[0] if key == "prompt" else value.reshape(1))
  assert sorted(tree) == ["layers_1", "layers_2"]  # the top 2 layers
  ours = _ours(model, params, Delta(tree))
  np.testing.assert_allclose(ours[MASK], _theirs(pm)[MASK], atol=1e-4, rtol=0)
  assert np.abs(ours - _ours(model, params))[MASK].max() > 1e-2


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "adapter", "llama_adapter"])
def test_zero_initialized_methods_give_the_plain_backbone_exactly(tmp_path, arch, method):
  if arch == "llama":
    hf_refs.tiny_llama(tmp_path)
  else:
    hf_refs.tiny_gpt2(tmp_path)
  cfg, params, _ = load_hf_dir(tmp_path)
  model = build_model(cfg)
  config = apply_arg(base_config(), f"method={method}")
  config.lora.targets = "q,k,v,o,up,down"
  config.llama_adapter.layers = 2
  m = build_method(config, cfg, params)
  delta = prepare(m, model, params, jax.random.PRNGKey(0)).trainable["delta"]
  np.testing.assert_array_equal(_ours(model, params, Delta(delta, m.lora_scale)),
                                _ours(model, params))
