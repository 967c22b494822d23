"""The training loop: config -> backbone -> data -> prefix -> compiled steps -> checkpoints.

`train_and_evaluate(config, workdir)` is the one function `main.py` calls. Each arrow of the
data path is a function call found by name: `load_backbone`, `data.train_iterator`,
`init_prefix`, `make_train_step`, `Checkpointer.save`, `export_prefix`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from prefix_jax import methods
from prefix_jax.models import build_model
from prefix_jax.models.remat import check_remat
from prefix_jax.train import data as train_data
from prefix_jax.train import mesh as mesh_lib
from prefix_jax.train.backbone import load_backbone
from prefix_jax.train.checkpoint import Checkpointer, check_workdir
from prefix_jax.train.export import backbone_signature, export_prefix
from prefix_jax.train.logger import MetricLogger, plot_curves
from prefix_jax.train.heads import export_trained_head, task_backbone
from prefix_jax.train.optim import build_optimizer
from prefix_jax.train.step import init_state, make_train_step, trainable_loss


class TrainingDiverged(RuntimeError):
  """The loss became NaN/Inf; the last good checkpoint is left as it was."""


class ConfigError(ValueError):
  """A config value that cannot work (message names the key)."""


def validate_config(config) -> None:
  methods.check_name(config.method)
  t = config.train
  for key, value in (("train.batch_size", t.batch_size), ("train.accum_steps", t.accum_steps)):
    if not isinstance(value, int) or value <= 0:
      raise ConfigError(f"{key} must be a positive int, got {value!r}")
  if t.batch_size % t.accum_steps:
    raise ConfigError(f"train.batch_size {t.batch_size} is not divisible by train.accum_steps "
                      f"{t.accum_steps}")
  if t.num_steps < 0 or t.num_epochs < 0 or (t.num_steps == 0 and t.num_epochs == 0):
    raise ConfigError(f"set train.num_steps or train.num_epochs > 0 (got {t.num_steps}, "
                      f"{t.num_epochs})")
  if config.data.bucket_size <= 0:
    raise ConfigError(f"data.bucket_size must be > 0, got {config.data.bucket_size}")
  pack = config.data.pack_length
  if not isinstance(pack, int) or pack < 0:
    raise ConfigError(f"data.pack_length must be an int >= 0 (0: no packing), got {pack!r}")
  step = config.data.get("pack_length_step", 0)
  if not isinstance(step, int) or step < 0:
    raise ConfigError(f"data.pack_length_step must be an int >= 0 (0: rows of "
                      f"data.pack_length), got {step!r}")
  if step and not pack:
    raise ConfigError(f"data.pack_length_step {step} chooses packed row lengths; it needs "
                      "data.pack_length > 0")
  if pack and config.method != "finetune" and config.prefix.placement == "infix":
    raise ConfigError("data.pack_length > 0 packs rows behind one shared prefix; an infix "
                      "(prefix.placement='infix') needs one example per row")
  if config.optim.learning_rate <= 0:
    raise ConfigError(f"optim.learning_rate must be > 0, got {config.optim.learning_rate}")
  if config.dtype not in ("float32", "bfloat16"):
    raise ConfigError(f"dtype must be float32 or bfloat16, got {config.dtype!r}")
  try:
    check_remat(t.remat)
  except ValueError as e:
    raise ConfigError(f"train.{e}") from None


def run_signature(config, cfg, spec) -> dict:
  return {"backbone": backbone_signature(cfg), "model": config.model,
          "prefix": None if spec is None else dataclasses.asdict(spec),
          "trainable_pattern": config.train.trainable_pattern or None}


def maybe_initialize_distributed(config) -> None:
  d = config.get("distributed", None)
  if d and d.num_processes > 1:
    if d.get("cpu_collectives"):
      jax.config.update("jax_cpu_collectives_implementation", d.cpu_collectives)
    jax.distributed.initialize(coordinator_address=d.coordinator_address,
                               num_processes=d.num_processes, process_id=d.process_id)


class _Preemption:
  """Turns SIGTERM into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._old = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    self.requested = True

  def restore(self):
    signal.signal(signal.SIGTERM, self._old)


def train_and_evaluate(config, workdir) -> dict:
  """Trains (resuming from the latest checkpoint in workdir) and returns a summary dict."""
  workdir = Path(workdir)
  validate_config(config)
  maybe_initialize_distributed(config)
  is_main = jax.process_index() == 0
  cfg, backbone, tokenizer = load_backbone(config.model, seed=config.seed, dtype="float32")
  cfg, backbone = task_backbone(config, cfg, backbone)
  dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
  model = build_model(cfg, dtype, remat=config.train.remat)
  method = methods.build_method(config, cfg, backbone)  # MethodError before any compile
  spec = method.spec
  train_data.check_budget(config, cfg)
  mesh = mesh_lib.make_mesh(config.train.num_devices)
  if not config.data.pack_length:  # packed batches round their row count to the devices
    mesh_lib.check_batch_size(config.train.batch_size, mesh)
  if config.data.pack_length and config.data.pack_length + (
      spec.length if spec else 0) > cfg.max_positions:
    raise ConfigError(f"data.pack_length {config.data.pack_length} + prefix length exceeds the "
                      f"model's max_positions {cfg.max_positions}")
  signature = run_signature(config, cfg, spec)
  if method.name not in methods.PREFIX_FAMILY:
    signature["method"] = method.signature
  check_workdir(workdir, signature, write=is_main)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("workdir checked")
  if is_main:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=1, sort_keys=True))

  train_iter = train_data.train_iterator(config, tokenizer, cfg, jax.process_index(),
                                         jax.process_count(), num_devices=mesh.devices.size)
  total_steps = config.train.num_steps or config.train.num_epochs * train_iter.steps_per_epoch
  optimizer = build_optimizer(config.optim, total_steps)
  rng = jax.random.PRNGKey(config.seed)
  init_rng, step_rng = jax.random.split(rng)
  prepared = methods.prepare(method, model, backbone, init_rng, tokenizer)
  frozen, prefix_params = prepared.frozen, prepared.trainable["prefix"]
  state = init_state(prepared.trainable, optimizer)

  ckpt = Checkpointer(workdir, keep=config.train.keep_checkpoints)
  restored = ckpt.restore(state)
  if restored is None and spec is not None and is_main:
    # The starting point, for "before training" evaluations (e.g. `make demo`).
    export_prefix(workdir / "prefix_init.safetensors", spec, cfg, jax.device_get(prefix_params))
  if restored is not None:
    state, meta = restored
    train_iter.set_state(meta["data"])
    step_rng = jnp.asarray(np.asarray(meta["rng"], np.uint32))
    logging.info("resumed from step %d", int(state.step))

  repl = mesh_lib.replicated(mesh)
  frozen_sh = mesh_lib.backbone_shardings(frozen, mesh, config.train.fsdp)
  frozen = jax.device_put(frozen, frozen_sh)
  state = jax.device_put(state, repl)
  loss_fn = prepared.loss_fn
  step_fn = jax.jit(make_train_step(loss_fn, optimizer, config.train.accum_steps),
                    in_shardings=(repl, frozen_sh, mesh_lib.batch_sharding(mesh), repl),
                    out_shardings=(repl, repl), donate_argnums=(0,))
  eval_fn = jax.jit(functools.partial(trainable_loss, loss_fn))
  eval_batches = train_data.eval_loss_batches(config, tokenizer, cfg)

  share = methods.share_summary(state.trainable, backbone)
  if is_main:
    print(f"method {method.name}: {share['trainable_params']:,} trainable parameters, "
          f"{100 * share['trainable_share']:.4g}% of the backbone's {share['backbone_params']:,}")
  start = int(state.step)
  logger = MetricLogger(workdir, total_steps, start, enabled=is_main)
  preempt = _Preemption()

  def data_meta():
    return {"data": train_iter.get_state(), "rng": np.asarray(step_rng).tolist(),
            "step": int(state.step)}

  def evaluate() -> float:
    total, weight = 0.0, 0.0
    for batch in eval_batches:
      loss, m = eval_fn(state.trainable, frozen, batch)
      total += float(loss) * float(m["target_tokens"])
      weight += float(m["target_tokens"])
    return total / max(weight, 1.0)

  status, t_last, tokens_since, loss_sum, loss_n = "completed", time.time(), 0.0, 0.0, 0
  if restored is None and config.train.eval_every and eval_batches:
    logger.write(0, "eval", {"loss": evaluate()})  # the starting point
  try:
    while int(state.step) < total_steps:
      step = int(state.step)
      batch = train_iter.next_batch()
      if config.train.inject_nan_at_step == step + 1:  # test hook: poison this step's loss
        batch = dict(batch, weights=batch["weights"] * np.float32("nan"))
      state, metrics = step_fn(state, frozen, mesh_lib.put_batch(batch, mesh),
                               jax.random.fold_in(step_rng, step))
      step += 1
      loss = float(metrics["loss"])
      if not np.isfinite(loss):
        last = ckpt.latest_step()
        raise TrainingDiverged(f"loss is {loss} at step {step}; stopped without saving "
                               f"(last good checkpoint: step {last} in {workdir})")
      tokens_since += float(metrics["target_tokens"])
      loss_sum, loss_n = loss_sum + loss, loss_n + 1
      logger.advance()
      if step % config.train.log_every == 0 or step == total_steps:
        now = time.time()  # loss: mean over the steps since the last log line
        logger.write(step, "train", {"loss": loss_sum / loss_n,
                                     "grad_norm": float(metrics["grad_norm"]),
                                     "tokens_per_s": tokens_since / max(now - t_last, 1e-9)})
        t_last, tokens_since, loss_sum, loss_n = now, 0.0, 0.0, 0
      if config.train.eval_every and step % config.train.eval_every == 0 and eval_batches:
        eval_loss = evaluate()
        logger.write(step, "eval", {"loss": eval_loss})
        ckpt.save_best(step, state, data_meta(), score=-eval_loss)
      if step % config.train.checkpoint_every == 0:
        ckpt.save(step, state, data_meta())
      _test_signal_hook(step)
      if preempt.requested:
        ckpt.save(step, state, data_meta())
        status = "preempted"
        break
    else:
      if ckpt.latest_step() != int(state.step):
        ckpt.save(int(state.step), state, data_meta())
  finally:
    preempt.restore()
    logger.close()

  summary = {"status": status, "step": int(state.step), "total_steps": total_steps,
             **share, "examples_cut": train_iter.cut}
  if status == "completed":
    if eval_batches:
      summary["eval_loss"] = evaluate()
    methods.check_trainable(method, state.trainable, backbone)
    if is_main:
      export_trained_head(workdir, cfg, jax.device_get(state.trainable["backbone"]))
      summary.update(methods.export_trained(workdir, method, cfg, state.trainable))
      summary["backbone_bytes"] = int(sum(np.asarray(x).nbytes
                                          for x in jax.tree_util.tree_leaves(backbone)))
      print(f"exported {summary.get('prefix_file') or summary.get('method_file')} for a "
            f"backbone of {summary['backbone_bytes'] / 1e6:.1f} MB")
    if is_main:
      plot_curves(workdir)
  if is_main:
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
  ckpt.close()
  return summary


def _test_signal_hook(step: int) -> None:
  """Tests of preemption and crash recovery send SIGTERM / SIGKILL to the run after a given
  step through these environment variables; unset in normal runs."""
  import os
  for var, sig in (("PREFIX_JAX_TEST_TERM_AT", signal.SIGTERM),
                   ("PREFIX_JAX_TEST_KILL_AT", signal.SIGKILL)):
    if os.environ.get(var) == str(step):
      os.kill(os.getpid(), sig)
      time.sleep(0.1)  # let the handler run before the loop checks the flag
