"""Rematerialization of transformer blocks: what a block keeps for the backward pass.

Prefix-tuning differentiates through the frozen backbone only to reach its inputs, so the
backward pass needs no activation for weight gradients; what it keeps are the inputs of the
nonlinear ops (norms, softmax, GELU/SiLU), several copies per op as JAX's autodiff saves
them. 'dots' keeps only the outputs of matmuls and recomputes the elementwise ops from them in
the backward pass (cheap next to the matmuls): less memory at about the same step time
(docs/benchmarks.md, "Numbers that used to sit in library comments"). 'full' keeps only each
block's input and recomputes the whole block (its forward pass runs twice). Forward-only use
(decoding, evaluation) is unaffected.
"""
from __future__ import annotations

import flax.linen as nn
import jax

POLICIES = {
    "none": None,
    "dots": jax.checkpoint_policies.dots_saveable,
    "full": jax.checkpoint_policies.nothing_saveable,
}


def check_remat(remat: str) -> str:
  if remat not in POLICIES:
    raise ValueError(f"remat must be one of {sorted(POLICIES)}, got {remat!r}")
  return remat


def remat_block(block_cls: type[nn.Module], remat: str) -> type[nn.Module]:
  """`block_cls`, or its `nn.remat` version whose `__call__` saves what `remat` names."""
  if check_remat(remat) == "none":
    return block_cls
  return nn.remat(block_cls, policy=POLICIES[remat], prevent_cse=True)
