"""Initial trainable trees of the methods that add parameters (LoRA, adapters, LLaMA-Adapter),
and LoRA folded into the backbone. Tree layout: `models.deltas`."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from prefix_jax.methods import tree as tree_lib
from prefix_jax.methods.errors import MethodError

LORA_TARGETS = ("q", "k", "v", "o", "up", "down", "gate")


def _kernel(module: dict) -> np.ndarray:
  return module["kernel"]


def _lora_module(block: dict, target: str, attn: str) -> tuple[str, str | None]:
  """(sublayer name, parameter of the projection or None for a fused c_attn slice)."""
  if target in ("q", "k", "v", "o"):
    sub = block[attn]
    if "c_attn" in sub:
      return attn, "c_proj" if target == "o" else None
    return attn, f"{target}_proj"
  mlp = block["mlp"]
  names = sorted(mlp)
  gated = "gate_proj" in mlp
  if target == "gate" and not gated:
    raise MethodError(f"lora target 'gate' does not exist in this backbone (its MLP has "
                      f"{names}; targets: q,k,v,o,up,down)")
  return "mlp", {"up": "up_proj" if gated else ("c_fc" if "c_fc" in mlp else "fc1"),
                 "down": "down_proj" if gated else ("c_proj" if "c_proj" in mlp else "fc2"),
                 "gate": "gate_proj"}[target]


def _lora_dims(cfg, block: dict, target: str, attn: str) -> tuple[int, int]:
  sub_name, param = _lora_module(block, target, attn)
  if param is None:  # a slice of the fused c_attn [H, 3H]
    kernel = _kernel(block[sub_name]["c_attn"])
    return kernel.shape[0], kernel.shape[1] // 3
  return _kernel(block[sub_name][param]).shape


def parse_targets(text: str) -> tuple[str, ...]:
  targets = tuple(t.strip() for t in str(text).split(",") if t.strip())
  bad = [t for t in targets if t not in LORA_TARGETS]
  if not targets or bad:
    raise MethodError(f"lora.targets {text!r}: unknown or empty target(s) {bad} (choose from "
                      f"{','.join(LORA_TARGETS)})")
  return targets


def init_lora(cfg, backbone: dict, rng, rank: int, targets: tuple[str, ...]) -> dict:
  """A [in, r] as peft's kaiming-uniform (bound 1/sqrt(in)), B [r, out] zero: every block's
  attention (and BART's cross-attention) and MLP projections named in `targets`."""
  items = {}
  for path in tree_lib.blocks(backbone):
    block = tree_lib.node(backbone, path)
    attns = [a for a in ("attn", "cross_attn") if a in block]
    for target in targets:
      for attn in attns if target in ("q", "k", "v", "o") else ["mlp"]:
        fan_in, fan_out = _lora_dims(cfg, block, target, attn)
        rng, key = jax.random.split(rng)
        bound = 1.0 / np.sqrt(fan_in)
        items[(*path, attn, "lora", target)] = {
            "a": jax.random.uniform(key, (fan_in, rank), jnp.float32, -bound, bound),
            "b": jnp.zeros((rank, fan_out), jnp.float32)}
  return tree_lib.nest(items)


def adapter_dim(cfg, backbone: dict, dim: int, share: float, n_backbone: int) -> int:
  """The bottleneck size: from `share` (fraction of backbone params, wins if > 0) or `dim`."""
  if share > 0:
    n = 2 * len(tree_lib.blocks(backbone))  # adapters: after attention and after the MLP
    h = cfg.hidden_size
    dim = int(round((share * n_backbone / n - h) / (2 * h + 1)))
    if dim <= 0:
      raise MethodError(f"adapter.share {share} gives an adapter size of {dim} for this "
                        f"backbone; use a larger share or adapter.dim")
  if dim <= 0:
    raise MethodError(f"adapter size must be > 0 (adapter.dim {dim}, adapter.share {share})")
  return dim


def init_adapters(cfg, backbone: dict, rng, dim: int) -> dict:
  """Down [H, m] small normal, up [m, H] zero (so every adapter starts as the identity)."""
  items, h = {}, cfg.hidden_size
  for path in tree_lib.blocks(backbone):
    for where in ("adapter_attn", "adapter_mlp"):
      rng, key = jax.random.split(rng)
      items[(*path, where)] = {
          "down": {"kernel": 0.01 * jax.random.normal(key, (h, dim)), "bias": jnp.zeros((dim,))},
          "up": {"kernel": jnp.zeros((dim, h)), "bias": jnp.zeros((h,))}}
  return tree_lib.nest(items)


def init_llama_adapter(cfg, backbone: dict, rng, length: int, layers: int) -> dict:
  """Adaption prompts [Lp, H] (normal, as peft) and zero gates [1] in the top `layers` blocks
  of every stack."""
  if length <= 0:
    raise MethodError(f"llama_adapter.length must be > 0, got {length}")
  depth = min(len(v) for v in tree_lib.stacks(backbone).values())
  if not 0 < layers <= depth:
    raise MethodError(f"llama_adapter.layers must be in 1..{depth} for this backbone, "
                      f"got {layers}")
  items = {}
  for path in tree_lib.top_blocks(backbone, layers):
    rng, key = jax.random.split(rng)
    items[(*path, "attn")] = {"prompt": jax.random.normal(key, (length, cfg.hidden_size)),
                              "gate": jnp.zeros((1,))}
  return tree_lib.nest(items)


def merge_lora(backbone: dict, delta: dict, scale: float) -> dict:
  """The backbone with every LoRA update folded into its kernels: W + scale * A @ B (exact up
  to float rounding; a fused c_attn gets each of q, k, v in its own third)."""
  flat = dict(traverse_util.flatten_dict(backbone))
  for path, ab in traverse_util.flatten_dict(delta, is_leaf=lambda k, v: isinstance(v, dict) and "a" in v).items():
    if path[-2] != "lora":
      continue
    *block, attn, _, target = path
    sub_name, param = _lora_module(tree_lib.node(backbone, tuple(block)), target, attn)
    upd = np.asarray(ab["a"], np.float32) @ np.asarray(ab["b"], np.float32) * scale
    if param is None:
      key = (*block, sub_name, "c_attn", "kernel")
      i = "qkv".index(target) * upd.shape[1]
      kernel = np.array(flat[key], np.float32)
      kernel[:, i:i + upd.shape[1]] += upd
    else:
      key = (*block, sub_name, param, "kernel")
      kernel = np.asarray(flat[key], np.float32) + upd
    flat[key] = kernel.astype(np.asarray(flat[key]).dtype)
  return traverse_util.unflatten_dict(flat)
