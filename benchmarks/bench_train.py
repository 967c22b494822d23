"""Our train step as the trainer runs it (`prefix_jax.train`), measured one call at a time.

`JaxTrainJob` lives in a worker process: it builds the backbone (an HF checkpoint read by
`load_hf_dir`, or random weights of a shape), the trainable tree (the kv prefix, or every
backbone parameter via `split_backbone(backbone, '.*')` for full fine-tuning), AdamW from
`build_optimizer`, and the jitted `make_train_step` with the state donated, as
`prefix_jax.train.loop` does. Batches carry `loss_pos` (`add_loss_positions`), as the
trainer's do.
"""
from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import bench_common


def load_batches(path: str) -> list[dict]:
  """Batches saved by `save_batches`."""
  with np.load(path) as f:
    n = int(f["count"])
    return [{k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(f"{i}/")}
            for i in range(n)]


def save_batches(path, batches: list[dict]) -> None:
  arrays = {f"{i}/{k}": v for i, b in enumerate(batches) for k, v in b.items()}
  np.savez(path, count=np.asarray(len(batches)), **arrays)


def random_batch(tokens: np.ndarray) -> dict:
  """A full batch from [B, T + 1] ids: every position is a target."""
  b, t = tokens.shape[0], tokens.shape[1] - 1
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:],
          "weights": np.ones((b, t), np.float32), "mask": np.ones((b, t), bool),
          "prefix_at": np.zeros((b,), np.int32), "task": np.zeros((b,), np.int32)}


def cost_flops(compiled) -> float | None:
  """XLA's own FLOP count of a compiled computation (a cross-check; None if not reported)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # not every backend implements it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  flops = (cost or {}).get("flops")
  return float(flops) if flops else None


class JaxTrainJob:
  """One training configuration; `run()` times `steps_per_call` steps (or one pass over the
  saved batches) and returns seconds, target tokens and the first step's loss."""

  def __init__(self, *, method: str, hf_dir: str | None = None, shape: dict | None = None,
               data: str = "random", batch: int = 8, seq_len: int = 128, prefix_len: int = 10,
               seed: int = 0, prefix_seed: int = 1, dtype: str = "float32",
               steps_per_call: int = 1, learning_rate: float = 5e-5,
               remat: str = "dots"):
    import ml_collections
    from prefix_jax.models import ModelConfig, build_model
    from prefix_jax.prefixes import PrefixSpec
    from prefix_jax.train.loss import add_loss_positions, lm_loss
    from prefix_jax.train.optim import build_optimizer
    from prefix_jax.train.step import init_state, make_train_step, split_backbone

    if method not in ("prefix", "full"):
      raise ValueError(f"method must be 'prefix' or 'full', got {method!r}")
    t0 = time.perf_counter()
    if hf_dir:
      from prefix_jax.weights.hf import load_hf_dir
      cfg, backbone, _ = load_hf_dir(hf_dir, with_tokenizer=False)
    else:
      from benchmarks.decode_prefix import random_params
      cfg = ModelConfig(**shape)
      backbone = random_params(build_model(cfg), seed)
    self.cfg = cfg
    model = build_model(cfg, jnp.bfloat16 if dtype == "bfloat16" else jnp.float32, remat)
    optimizer = build_optimizer(ml_collections.ConfigDict(
        {"name": "adamw", "learning_rate": learning_rate, "schedule": "constant"}), 10**6)
    if method == "prefix":
      spec = PrefixSpec(method="kv", length=prefix_len)
      emb = bench_common.prefix_embedding(dataclasses.asdict(cfg), prefix_len, prefix_seed)
      prefix = bench_common.peft_to_kv(emb, dataclasses.asdict(cfg))
      trained, frozen = {}, backbone
    else:
      spec, prefix = None, {}
      trained, frozen = split_backbone(backbone, ".*")
    del backbone
    state = init_state({"prefix": prefix, "backbone": trained}, optimizer)
    self._state = jax.device_put(state)
    self._frozen = jax.device_put(frozen)
    del state, frozen, trained
    loss_fn = functools.partial(lm_loss, model=model, spec=spec)
    self._step = jax.jit(make_train_step(loss_fn, optimizer), donate_argnums=(0,))
    self._rng = jax.random.PRNGKey(seed)
    self.load_s = time.perf_counter() - t0

    if data == "random":
      tokens = bench_common.random_tokens(cfg.vocab_size, batch, seq_len, seed)
      batches = [random_batch(tokens)]
    else:
      batches = load_batches(data)
    # One device: one loss-position group per batch, as the trainer lays it out.
    self._batches = [jax.device_put(add_loss_positions(b, groups=1)) for b in batches]
    self._tokens = float(sum(float(np.sum(b["weights"])) for b in batches))
    self._steps = steps_per_call if data == "random" else 1
    self.info = {"load_s": self.load_s, "trainable_params": _count(self._state.trainable),
                 "backbone_params": _count(self._frozen) + _count(self._state.trainable["backbone"]),
                 "batch_shapes": sorted({tuple(b["inputs"].shape) for b in batches})}
    if data == "random":
      # Compiled ahead of time: compile time apart, and XLA's FLOP count for free.
      t0 = time.perf_counter()
      self._step = self._step.lower(self._state, self._frozen, self._batches[0],
                                    self._rng).compile()
      self.info["compile_s"] = time.perf_counter() - t0
      self.info["xla_flops"] = cost_flops(self._step)

  def run(self) -> dict:
    losses = []
    start = time.perf_counter()
    for _ in range(self._steps):
      for b in self._batches:
        self._state, metrics = self._step(self._state, self._frozen, b, self._rng)
        losses.append(metrics["loss"])
    jax.block_until_ready((self._state, losses))
    seconds = (time.perf_counter() - start) / self._steps
    return {"seconds": seconds, "tokens": self._tokens, "loss": float(losses[0])}


def _count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
