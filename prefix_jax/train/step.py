"""The pure, compiled train step: `(state, frozen, batch, rng) -> (state, metrics)`.

What is trained is one pytree, `trainable = {'prefix': prefix_params, 'backbone': {...}}`:
for prefix-tuning the backbone part is empty and the whole backbone arrives as `frozen`, an
argument (never a closure constant) that is never donated. Baselines that train backbone
parameters (full fine-tuning, a classification head) name them with a regex `trainable_pattern`
on parameter paths; those leaves move from `frozen` into `trainable['backbone']`. Methods that
add parameters (LoRA, adapters, LLaMA-Adapter; see `prefix_jax.methods`) keep them in
`trainable['delta']`, passed to the loss as `delta=`.
Optimizer state therefore exists only for what is trained.
"""
from __future__ import annotations

import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax import traverse_util


@struct.dataclass
class TrainState:
  step: jax.Array
  trainable: Any
  opt_state: Any


def split_backbone(backbone: dict, pattern: str | None) -> tuple[dict, dict]:
  """(trainable leaves {'a/b/kernel': x}, frozen backbone with those leaves removed)."""
  flat = traverse_util.flatten_dict(backbone, sep="/")
  if not pattern:
    return {}, backbone
  rx = re.compile(pattern)
  train = {k: v for k, v in flat.items() if rx.search(k)}
  if not train:
    raise ValueError(f"trainable_pattern {pattern!r} matches no backbone parameter "
                     f"(e.g. {sorted(flat)[:3]})")
  frozen = traverse_util.unflatten_dict({k: v for k, v in flat.items() if k not in train}, sep="/")
  return train, frozen


def merge_backbone(frozen: dict, trained: dict) -> dict:
  if not trained:
    return frozen
  flat = traverse_util.flatten_dict(frozen, sep="/")
  flat.update(trained)
  return traverse_util.unflatten_dict(flat, sep="/")


def trainable_loss(loss_fn: Callable, trainable: dict, frozen: dict, batch):
  """loss_fn on the trained tree: its backbone leaves merged into the frozen backbone, its
  prefix as argument 0, its added parameters (if any) as `delta=`."""
  backbone = merge_backbone(frozen, trainable["backbone"])
  extra = {"delta": trainable["delta"]} if "delta" in trainable else {}
  return loss_fn(trainable["prefix"], backbone, batch, **extra)


def init_state(trainable, optimizer: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), trainable=trainable,
                    opt_state=optimizer.init(trainable))


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation,
                    accum_steps: int = 1):
  """A pure train step.

  loss_fn(prefix_params, backbone, batch[, delta=]) -> (loss, metrics dict); differentiated
  w.r.t. the trainable tree only (see `trainable_loss`). With `accum_steps` > 1 the batch [B, ...] is split into that many
  micro-batches [B/accum, ...] whose gradients are averaged (weighted by target tokens).
  """
  def weighted_loss(trainable, frozen, batch):
    loss, metrics = trainable_loss(loss_fn, trainable, frozen, batch)
    return loss * metrics["target_tokens"], metrics

  grad_fn = jax.value_and_grad(weighted_loss, has_aux=True)

  def step(state: TrainState, frozen, batch, rng):
    del rng  # the frozen backbone runs deterministically; kept for dropout-style variants
    if accum_steps == 1:
      (total, metrics), grads = grad_fn(state.trainable, frozen, batch)
      tokens = metrics["target_tokens"]
    else:
      micro = jax.tree_util.tree_map(
          lambda x: x.reshape(accum_steps, x.shape[0] // accum_steps, *x.shape[1:]), batch)

      def body(carry, mb):
        (t, m), g = grad_fn(state.trainable, frozen, mb)
        acc_g, acc_t, acc_n = carry
        return (jax.tree_util.tree_map(jnp.add, acc_g, g), acc_t + t,
                acc_n + m["target_tokens"]), None

      zeros = jax.tree_util.tree_map(jnp.zeros_like, state.trainable)
      (grads, total, tokens), _ = jax.lax.scan(body, (zeros, 0.0, 0.0), micro)
    denom = jnp.maximum(tokens, 1.0)
    grads = jax.tree_util.tree_map(lambda g: g / denom, grads)
    loss = total / denom
    updates, opt_state = optimizer.update(grads, state.opt_state, state.trainable)
    trainable = optax.apply_updates(state.trainable, updates)
    new_state = TrainState(step=state.step + 1, trainable=trainable, opt_state=opt_state)
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), "target_tokens": tokens,
               "finite": jnp.isfinite(loss)}
    return new_state, metrics

  return step
