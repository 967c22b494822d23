"""Optimizer from config: optax chain (clipping, schedule, AdamW) for the trainable tree only."""
from __future__ import annotations

import optax

from prefix_jax.errors import UserError


class OptimConfigError(UserError, ValueError):
  """A bad optimizer setting (message names the key)."""


def build_schedule(cfg, total_steps: int) -> optax.Schedule:
  """cfg: learning_rate, schedule ('linear' | 'cosine' | 'constant'), warmup_steps."""
  lr, warmup = float(cfg.learning_rate), int(cfg.get("warmup_steps", 0))
  if lr <= 0:
    raise OptimConfigError(f"optim.learning_rate must be > 0, got {lr}")
  if warmup < 0 or total_steps <= 0:
    raise OptimConfigError(f"optim.warmup_steps={warmup} / total steps={total_steps} invalid")
  kind = cfg.get("schedule", "linear")
  decay_steps = max(total_steps - warmup, 1)
  if kind == "linear":  # HF's get_linear_schedule_with_warmup, as in the paper's code
    decay = optax.linear_schedule(lr, 0.0, decay_steps)
  elif kind == "cosine":
    decay = optax.cosine_decay_schedule(lr, decay_steps)
  elif kind == "constant":
    decay = optax.constant_schedule(lr)
  else:
    raise OptimConfigError(f"optim.schedule '{kind}' unknown (linear, cosine, constant)")
  if warmup == 0:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])


def build_optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
  """cfg: name ('adamw' | 'adam' | 'sgd' | 'adafactor'), learning_rate, schedule, warmup_steps,
  weight_decay, b1, b2, eps, grad_clip (global norm; 0 = off)."""
  schedule = build_schedule(cfg, total_steps)
  name = cfg.get("name", "adamw")
  if name == "adamw":
    opt = optax.adamw(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999),
                      eps=cfg.get("eps", 1e-8), weight_decay=cfg.get("weight_decay", 0.0))
  elif name == "adam":
    opt = optax.adam(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999),
                     eps=cfg.get("eps", 1e-8))
  elif name == "sgd":
    opt = optax.sgd(schedule, momentum=cfg.get("momentum", 0.0) or None)
  elif name == "adafactor":
    opt = optax.adafactor(schedule)
  else:
    raise OptimConfigError(f"optim.name '{name}' unknown (adamw, adam, sgd, adafactor)")
  clip = float(cfg.get("grad_clip", 0.0))
  if clip < 0:
    raise OptimConfigError(f"optim.grad_clip must be >= 0, got {clip}")
  return optax.chain(optax.clip_by_global_norm(clip), opt) if clip > 0 else opt
