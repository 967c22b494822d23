"""Loss for conditional generation: cross-entropy on target tokens only."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from prefix_jax.prefixes import PrefixSpec, materialize

Array = jax.Array


def token_cross_entropy(logits: Array, targets: Array, weights: Array) -> tuple[Array, Array]:
  """Weighted mean cross-entropy. logits [B, T, V], targets [B, T], weights [B, T] (0 on the
  source and padding). Returns (mean loss, total weight)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  total = jnp.sum(weights)
  return jnp.sum(ce * weights) / jnp.maximum(total, 1.0), total


def prefix_for_batch(spec: PrefixSpec, cfg, prefix_params, batch):
  """Materializes the prefix; a bank is gathered by the batch's `task` ids [B]."""
  prefix = materialize(spec, cfg, prefix_params)
  if spec.num_tasks:
    prefix = prefix.gather(batch["task"])
  return prefix


def lm_loss(prefix_params, backbone, batch, *, model, spec: PrefixSpec):
  """Loss of the frozen backbone with the prefix; differentiate w.r.t. argument 0.

  batch: `inputs` [B, T], `targets` [B, T], `weights` [B, T], `mask` [B, T],
  `prefix_at` [B] (used with infix placement), `task` [B] (used with a bank).
  """
  prefix = prefix_for_batch(spec, model.cfg, prefix_params, batch)
  prefix_at = batch["prefix_at"] if spec.placement == "infix" else None
  logits = model.apply({"params": backbone}, batch["inputs"], prefix=prefix,
                       mask=batch["mask"], prefix_at=prefix_at)
  loss, total = token_cross_entropy(logits, batch["targets"], batch["weights"])
  return loss, {"loss": loss, "target_tokens": total}
