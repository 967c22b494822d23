"""Many prefixes as one program: K prefixes trained in one compiled step on one frozen backbone.

The K members (different lengths, inits, learning rates, data subsets or tasks) each keep their
own parameters, optimizer state (own learning rate schedule and gradient clipping) and data
iterator. A step concatenates one batch of each member (rows [B1 + ... + BK, T]) with the
member id of each row in `member` [B]; the backbone runs once with the banked prefix
(`pad_and_stack` + `Prefix.gather`). Each member's loss is its token mean over its own rows, and
the program minimizes their sum, so member k's gradient is exactly its solo run's gradient.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from prefix_jax.errors import UserError
from prefix_jax.models.decoder import gather_positions
from prefix_jax.prefixes import PrefixSpec, materialize, pad_and_stack
from prefix_jax.train.fused_ce import linear_cross_entropy
from prefix_jax.train.loss import add_loss_positions, token_cross_entropy

# Per-row / per-token arrays of a training batch that a combined batch concatenates.
ROW_KEYS = ("inputs", "targets", "weights", "mask")


class MultiConfigError(UserError, ValueError):
  """Members that cannot train as one program (message names the differing key)."""


@struct.dataclass
class MultiState:
  step: jax.Array
  trainable: tuple   # K prefix parameter trees (shapes may differ)
  opt_state: tuple   # K optimizer states


def init_multi_state(params: Sequence, optimizers: Sequence) -> MultiState:
  return MultiState(step=jnp.zeros((), jnp.int32), trainable=tuple(params),
                    opt_state=tuple(o.init(p) for o, p in zip(optimizers, params)))


def combine_batches(batches: Sequence[dict], pad_id: int = 0) -> dict:
  """Member batches (right-padded rows [Bk, Tk]) -> one batch [sum Bk, max Tk] with `member`
  [B] int32 and loss positions one group per row. Right padding after a causal sequence
  leaves its real positions' outputs unchanged."""
  t = max(b["inputs"].shape[1] for b in batches)
  out = {}
  for key in ROW_KEYS:
    fill = pad_id if key == "inputs" else 0
    out[key] = np.concatenate([np.pad(np.asarray(b[key]), ((0, 0), (0, t - b[key].shape[1])),
                                      constant_values=fill) for b in batches])
  out["prefix_at"] = np.concatenate([np.asarray(b["prefix_at"]) for b in batches])
  out["member"] = np.concatenate([np.full(len(b["inputs"]), k, np.int32)
                                  for k, b in enumerate(batches)])
  return add_loss_positions(out, groups=None)


def member_tokens(weights: jax.Array, member: jax.Array, k: int) -> jax.Array:
  """[K] target tokens of each member; weights [B, T], member [B]."""
  return jax.ops.segment_sum(jnp.sum(weights, axis=1), member, num_segments=k)


def multi_loss(params: tuple, backbone, batch, *, model, specs: Sequence[PrefixSpec]):
  """sum_k (token-mean loss of member k on its rows). batch: `inputs`/`targets`/`weights`/
  `mask` [B, T], `member` [B], `prefix_at` [B], `loss_pos`/`loss_valid` [B, P] (one group per
  row). Returns (objective, {'tokens': [K]})."""
  k = len(specs)
  bank = pad_and_stack([materialize(s, model.cfg, p) for s, p in zip(specs, params)])
  prefix = bank.gather(batch["member"])
  prefix_at = batch["prefix_at"] if specs[0].placement == "infix" else None
  tokens = member_tokens(batch["weights"], batch["member"], k)
  row_scale = 1.0 / jnp.maximum(tokens, 1.0)[batch["member"]]          # [B]
  pos = batch["loss_pos"]
  hidden = model.apply({"params": backbone}, batch["inputs"], prefix=prefix,
                       mask=batch["mask"], prefix_at=prefix_at, return_hidden=True,
                       out_pos=pos)                                       # [B, P, H]
  weights = gather_positions(batch["weights"], pos) * batch["loss_valid"] * row_scale[:, None]
  targets = gather_positions(batch["targets"], pos)
  if hasattr(model, "unembedding"):
    head = model.apply({"params": backbone}, method=type(model).unembedding)
    total = linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), head,
                                 targets.reshape(-1), weights.reshape(-1))
  else:
    logits = model.apply({"params": backbone}, hidden, method=type(model).logits)
    mean, norm = token_cross_entropy(logits, targets, weights)
    total = mean * jnp.maximum(norm, 1.0)
  return total, {"tokens": tokens}


def make_multi_step(loss_fn, optimizers: Sequence[optax.GradientTransformation]):
  """`(state, frozen, batch) -> (state, metrics)`: one gradient of the summed member losses,
  then each member's own optimizer update (own clipping and schedule) on its own gradient."""
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def step(state: MultiState, frozen, batch):
    (total, aux), grads = grad_fn(state.trainable, frozen, batch)
    params, opt_states = [], []
    for opt, p, g, s in zip(optimizers, state.trainable, grads, state.opt_state):
      updates, s = opt.update(g, s, p)
      params.append(optax.apply_updates(p, updates))
      opt_states.append(s)
    metrics = {"loss": total / len(optimizers), "tokens": aux["tokens"],
               "grad_norm": jnp.stack([optax.global_norm(g) for g in grads])}
    return MultiState(step=state.step + 1, trainable=tuple(params),
                      opt_state=tuple(opt_states)), metrics

  return step
