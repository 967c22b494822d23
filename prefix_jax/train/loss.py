"""Losses: cross-entropy on target tokens (decoder-only LMs, encoder-decoders) and sequence
classification (encoders with a head); `loss_function` picks one by the backbone's kind."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prefix_jax.models.decoder import gather_positions
from prefix_jax.prefixes import PrefixSpec
from prefix_jax.prefixes.seq2seq_params import materialize_for
from prefix_jax.train.fused_ce import linear_cross_entropy

Array = jax.Array


def token_cross_entropy(logits: Array, targets: Array, weights: Array) -> tuple[Array, Array]:
  """Weighted mean cross-entropy. logits [B, T, V], targets [B, T], weights [B, T] (0 on the
  source and padding). Returns (mean loss, total weight)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  total = jnp.sum(weights)
  return jnp.sum(ce * weights) / jnp.maximum(total, 1.0), total


def prefix_for_batch(spec: PrefixSpec, cfg, prefix_params, batch):
  """Materializes the prefix; a bank is gathered by the batch's `task` ids [B]."""
  prefix = materialize_for(spec, cfg, prefix_params)
  if spec.num_tasks:
    prefix = prefix.gather(batch["task"])
  return prefix


def add_loss_positions(batch: dict, multiple: int = 16, groups: int | None = None) -> dict:
  """Adds `loss_pos` int32 [G, K] / `loss_valid` bool [G, K]: the positions whose logits the
  loss needs (weights > 0), so that logits are computed for G x K positions instead of B x T.

  The B rows are split into G contiguous groups of B/G rows (default G = B: one per row);
  a position is an index into its group's rows flattened, `row_in_group * T + t`. K = the most
  loss positions of a group, rounded up to a multiple of `multiple`. One group per device
  (and micro-batch) wastes only that rounding; one per row wastes each row's gap to the
  fullest row. Host-side numpy, so K is a static shape.
  """
  weights = np.asarray(batch["weights"])
  b, t = weights.shape
  g = b if groups is None else groups
  if g < 1 or b % g:
    raise ValueError(f"{b} rows cannot be split into {g} loss-position groups")
  flat = weights.reshape(g, (b // g) * t) > 0
  counts = flat.sum(-1)
  k = min(flat.shape[1], -(-max(int(counts.max()), 1) // multiple) * multiple)
  pos = np.zeros((g, k), np.int32)
  valid = np.zeros((g, k), bool)
  for i in range(g):
    idx = np.nonzero(flat[i])[0][:k]
    pos[i, :len(idx)] = idx
    valid[i, :len(idx)] = True
  return dict(batch, loss_pos=pos, loss_valid=valid)


def model_loss(model, backbone, batch, prefix=None, prefix_at=None, delta=None):
  """Cross-entropy of a decoder-only LM (`models.DecoderLM`) on a batch; with `loss_pos` only
  those positions run the last layer's output projection and MLP and are unembedded.
  A packed batch (`segments` [B, T], see `data.batching.pack_segments`) runs as packed rows."""
  kwargs = dict(prefix=prefix, mask=batch["mask"], prefix_at=prefix_at,
                segments=batch.get("segments"), delta=delta)
  if "loss_pos" not in batch:
    logits = model.apply({"params": backbone}, batch["inputs"], **kwargs)
    return token_cross_entropy(logits, batch["targets"], batch["weights"])
  pos = batch["loss_pos"]
  # The last layer runs only where the loss reads.
  hidden = model.apply({"params": backbone}, batch["inputs"], return_hidden=True, out_pos=pos,
                       **kwargs)
  weights = gather_positions(batch["weights"], pos) * batch["loss_valid"]
  targets = gather_positions(batch["targets"], pos)
  total = jnp.sum(weights)
  if hasattr(model, "unembedding"):  # linear head: never materialize [B*K, V] logits
    head = model.apply({"params": backbone}, method=type(model).unembedding)
    loss_sum = linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), head,
                                    targets.reshape(-1), weights.reshape(-1))
    return loss_sum / jnp.maximum(total, 1.0), total
  logits = model.apply({"params": backbone}, hidden, method=type(model).logits)
  return token_cross_entropy(logits, targets, weights)


def lm_loss(prefix_params, backbone, batch, *, model, spec: PrefixSpec | None, delta=None):
  """Loss of the frozen backbone with the prefix; differentiate w.r.t. argument 0.

  batch: `inputs` [B, T], `targets` [B, T], `weights` [B, T], `mask` [B, T],
  `prefix_at` [B] (used with infix placement), `task` [B] (used with a bank), and optionally
  `loss_pos` / `loss_valid` [G, K] (see `add_loss_positions`) and `segments` [B, T] (packed
  rows). `spec=None`: no prefix (the
  full fine-tuning baseline differentiates w.r.t. the backbone instead). `delta`: a method's
  added parameters (`models.deltas.Delta`; LoRA, adapters, LLaMA-Adapter).
  """
  prefix = prefix_at = None
  if spec is not None:
    prefix = prefix_for_batch(spec, model.cfg, prefix_params, batch)
    prefix_at = batch["prefix_at"] if spec.placement == "infix" else None
  loss, total = model_loss(model, backbone, batch, prefix, prefix_at, delta)
  return loss, {"loss": loss, "target_tokens": total}


def classification_loss(prefix_params, backbone, batch, *, model, spec: PrefixSpec | None,
                        delta=None):
  """Sequence classification with an encoder's head (P-tuning v2): batch `inputs` [B, T],
  `mask` [B, T], `labels` [B] int, optional `weights` [B] (0 on padding rows). Train the head
  together with the prefix by making its params trainable (`trainable_pattern`)."""
  prefix = None if spec is None else prefix_for_batch(spec, model.cfg, prefix_params, batch)
  out = model.apply({"params": backbone}, batch["inputs"], prefix=prefix, mask=batch["mask"],
                    delta=delta)
  weights = batch.get("weights", jnp.ones(batch["labels"].shape, jnp.float32))
  ce = optax.softmax_cross_entropy_with_integer_labels(out.logits.astype(jnp.float32),
                                                       batch["labels"])
  total = jnp.sum(weights)
  loss = jnp.sum(ce * weights) / jnp.maximum(total, 1.0)
  accuracy = jnp.sum((jnp.argmax(out.logits, -1) == batch["labels"]) * weights) / jnp.maximum(
      total, 1.0)
  return loss, {"loss": loss, "target_tokens": total, "accuracy": accuracy}


def seq2seq_loss(prefix_params, backbone, batch, *, model, spec: PrefixSpec | None, delta=None):
  """Teacher-forced loss of an encoder-decoder (BART) with its three prefixes: batch `inputs` /
  `mask` [B, S] (source), `dec_inputs` / `dec_mask` [B, T], `targets` / `weights` [B, T]
  (see `data.batching.pack_seq2seq`)."""
  prefix = None if spec is None else prefix_for_batch(spec, model.cfg, prefix_params, batch)
  logits = model.apply({"params": backbone}, batch["inputs"], batch["dec_inputs"],
                       prefix=prefix, src_mask=batch["mask"], tgt_mask=batch["dec_mask"],
                       delta=delta)
  loss, total = token_cross_entropy(logits, batch["targets"], batch["weights"])
  return loss, {"loss": loss, "target_tokens": total}


KINDS = {"llama": "decoder", "gpt2": "decoder", "bart": "seq2seq", "bert": "encoder"}


def model_kind(cfg) -> str:
  """'decoder' (generates after the source), 'seq2seq' (encoder-decoder) or 'encoder'
  (classifies with a head)."""
  if cfg.arch not in KINDS:
    raise ValueError(f"no training path for architecture '{cfg.arch}' (known: {sorted(KINDS)})")
  return KINDS[cfg.arch]


def loss_function(cfg, model, spec: PrefixSpec | None):
  """`loss(prefix_params, backbone, batch) -> (loss, metrics)` for the backbone's kind."""
  fn = {"decoder": lm_loss, "seq2seq": seq2seq_loss,
        "encoder": classification_loss}[model_kind(cfg)]
  return functools.partial(fn, model=model, spec=spec)
