"""What the parameter-efficient methods add at the named points of the shared layers.

A `Delta` is the trainable tree of a method (LoRA, adapters, LLaMA-Adapter), passed to
`model.apply(..., delta=Delta(tree))` like a prefix: never variables of the backbone. Its tree
mirrors the backbone's: one entry per block (`h_0`, `layers_3`, `decoder/layers_1`, ...) with
  attn / cross_attn / mlp:  {'lora': {proj: {'a': [in, r], 'b': [r, out]}}}
                            proj in q, k, v, o (attention) and up, down, gate (MLP)
  attn:                     {'prompt': [Lp, H], 'gate': [1]}   (LLaMA-Adapter)
  adapter_attn/adapter_mlp: {'down': {'kernel': [H, m], 'bias': [m]},
                             'up': {'kernel': [m, H], 'bias': [H]}}
A missing entry means "nothing here": the layer computes exactly what the plain backbone does.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array


@struct.dataclass
class Delta:
  """A method's trainable tree plus its static scalars (LoRA's alpha / rank)."""
  tree: dict
  lora_scale: float = struct.field(pytree_node=False, default=1.0)

  def sub(self, *names: str) -> "Delta | None":
    """The part of the tree under `names` (None if absent)."""
    node = self.tree
    for name in names:
      if not isinstance(node, dict) or name not in node:
        return None
      node = node[name]
    return Delta(node, self.lora_scale)

  def get(self, name: str):
    return self.tree.get(name) if isinstance(self.tree, dict) else None


def sub(delta: Delta | None, *names: str) -> Delta | None:
  return None if delta is None else delta.sub(*names)


def add_lora(out: Array, x: Array, delta: Delta | None, proj: str) -> Array:
  """out + scale * (x @ A) @ B for projection `proj` (Hu et al. 2021); out unchanged if absent.
  x [..., in], out [..., out]."""
  lora = None if delta is None else delta.get("lora")
  if not lora or proj not in lora:
    return out
  ab = lora[proj]
  upd = (x @ ab["a"].astype(x.dtype)) @ ab["b"].astype(x.dtype)
  return out + (upd * delta.lora_scale).astype(out.dtype)


def add_adapter(h: Array, params: dict | None) -> Array:
  """h + up(relu(down(h))): a bottleneck adapter on a sublayer output h [..., H] (Houlsby et
  al. 2019 / Lin et al. 2020). A zero `up` makes it the identity."""
  if params is None:
    return h
  d, u = params["down"], params["up"]
  z = jax.nn.relu(h @ d["kernel"].astype(h.dtype) + d["bias"].astype(h.dtype))
  return h + z @ u["kernel"].astype(h.dtype) + u["bias"].astype(h.dtype)


def adaption_attention(q: Array, k: Array, v: Array, gate: Array) -> Array:
  """LLaMA-Adapter's gated attention over the adaption prompt (its own softmax).

  q [B, T, Hq, D] (post-RoPE queries); k, v [Lp, Hkv, D] (the prompt through W_k/W_v, no
  RoPE); gate [1]. Returns gate * softmax(q k^T / sqrt(D)) v, [B, T, Hq, D] (as peft's
  AdaptedAttention, before the output projection).
  """
  g = q.shape[2] // k.shape[1]
  k, v = jnp.repeat(k, g, axis=1), jnp.repeat(v, g, axis=1)  # HF repeat_kv head order
  root_d = jnp.sqrt(q.shape[-1]).astype(q.dtype)
  scores = (jnp.einsum("bthd,shd->bhts", q, k.astype(q.dtype)) / root_d).astype(jnp.float32)
  probs = (gate.astype(jnp.float32) * jax.nn.softmax(scores, axis=-1)).astype(q.dtype)
  return jnp.einsum("bhts,shd->bthd", probs, v.astype(q.dtype))
