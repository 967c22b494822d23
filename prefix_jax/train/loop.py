"""The training loop: config -> backbone -> data -> prefix -> compiled steps -> checkpoints.

`train_and_evaluate(config, workdir)` is the one function `main.py` calls. It reads top to
bottom in four sections: set-up (`_set_up`: config checks, backbone, data, optimizer),
restore (`_restore`: the latest readable checkpoint, else a fresh state), the step loop
(`_step_loop`: steps, logs, evaluations, checkpoints, a stop on SIGTERM/SIGINT) and finish
(`_finish`: final evaluation, prefix export, summary). Each arrow of the data path is a
function call found by name: `load_backbone`, `data.train_iterator`, `init_prefix`,
`make_train_step`, `Checkpointer.save`, `export_prefix`. Tests inject faults through `Hooks`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from prefix_jax import methods
from prefix_jax.errors import ConfigError, TrainingDiverged
from prefix_jax.metrics.names import config_subset
from prefix_jax.models import build_model
from prefix_jax.models.remat import check_remat
from prefix_jax.prefixes import PrefixSpec
from prefix_jax.train import data as train_data
from prefix_jax.train import mesh as mesh_lib
from prefix_jax.train.backbone import load_backbone
from prefix_jax.train.checkpoint import Checkpointer, check_workdir
from prefix_jax.train.export import backbone_signature, export_prefix
from prefix_jax.train.logger import MetricLogger, plot_curves
from prefix_jax.train.heads import export_trained_head, task_backbone
from prefix_jax.train.optim import build_optimizer
from prefix_jax.train import method_run, preemption
from prefix_jax.train.step import init_state, make_train_step, trainable_loss

__all__ = ["train_and_evaluate", "Hooks", "ConfigError", "TrainingDiverged", "validate_config"]


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
  for key in ("bucket_size", "loss_pos_multiple"):
    if config.data.get(key, 1) <= 0:
      raise ConfigError(f"data.{key} must be > 0, got {config.data[key]}")
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
  config_subset(config)  # a metric the task's suite lacks fails before training
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


@dataclasses.dataclass(frozen=True)
class Hooks:
  """Fault injection for tests; the defaults do nothing. `on_phase(name)` runs as each
  section starts ('set-up', 'restore', 'loop', 'finish'); `before_step(step, batch) -> batch`
  before step `step` (1-based) and `after_step(step, state) -> state` after it."""
  on_phase: Callable[[str], None] = lambda name: None
  before_step: Callable[[int, dict], dict] = lambda step, batch: batch
  after_step: Callable[[int, Any], Any] = lambda step, state: state


@dataclasses.dataclass
class _Run:
  """What set-up builds and the later sections read."""
  config: Any
  workdir: Path
  is_main: bool
  cfg: Any
  backbone: dict
  tokenizer: Any
  model: Any
  method: Any
  spec: PrefixSpec | None
  mesh: Any
  train_iter: Any
  eval_batches: list
  total_steps: int
  optimizer: Any
  prepared: Any  # method_run.Prepared: initial trained tree, frozen rest, loss


def train_and_evaluate(config, workdir, hooks: Hooks | None = None, *,
                       backbone_bundle=None) -> dict:
  """Trains (resuming from the latest checkpoint in workdir) and returns a summary dict.

  `backbone_bundle`: `load_backbone(config.model, seed=config.seed)`'s result when the caller
  holds it already (as `evaluate_workdir` takes it), so the weights are read once; default:
  loaded here.

  summary['status']: 'completed', 'preempted' (SIGTERM) or 'interrupted' (SIGINT); a stopped
  run has saved its current step. Raises a `UserError` subclass on bad input and
  `TrainingDiverged` when the loss or the parameters stop being finite."""
  hooks = hooks or Hooks()
  owns_handlers = preemption.active() is None
  stop = preemption.install()
  try:
    hooks.on_phase("set-up")
    run = _set_up(config, Path(workdir), backbone_bundle)
    hooks.on_phase("restore")
    ckpt = Checkpointer(run.workdir, keep=config.train.keep_checkpoints)
    try:
      state, step_rng, restored = _restore(run, ckpt)
      hooks.on_phase("loop")
      state, status, eval_loss = _step_loop(run, ckpt, state, step_rng, restored, hooks, stop)
      hooks.on_phase("finish")
      return _finish(run, state, status, eval_loss)
    finally:
      ckpt.close()
  finally:
    if owns_handlers:
      preemption.uninstall()


# --- set-up -------------------------------------------------------------------------------

def _set_up(config, workdir: Path, backbone_bundle=None) -> _Run:
  """Checks the config and the workdir, loads the backbone, builds data and optimizer.
  Writes nothing but run.json (and the workdir itself) to disk."""
  validate_config(config)
  maybe_initialize_distributed(config)
  is_main = jax.process_index() == 0
  cfg, backbone, tokenizer = backbone_bundle or load_backbone(config.model, seed=config.seed,
                                                              dtype="float32")
  cfg, backbone = task_backbone(config, cfg, backbone)  # an encoder gets its task's head
  dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
  model = build_model(cfg, dtype, remat=config.train.remat)
  method = methods.build_method(config, cfg, backbone)  # MethodError before any compile
  spec = method.spec
  train_data.check_budget(config, cfg)
  mesh = mesh_lib.make_mesh(config.train.num_devices)
  _check_fits(config, cfg, spec, mesh)
  signature = run_signature(config, cfg, spec)
  if method.name not in methods.PREFIX_FAMILY:
    signature["method"] = method.signature
  check_workdir(workdir, signature, write=is_main, dry_run=True)  # fail fast, write nothing
  train_iter = train_data.train_iterator(config, tokenizer, cfg, jax.process_index(),
                                         jax.process_count(), num_devices=mesh.devices.size)
  total_steps = config.train.num_steps or config.train.num_epochs * train_iter.steps_per_epoch
  optimizer = build_optimizer(config.optim, total_steps)
  eval_batches = train_data.eval_loss_batches(config, tokenizer, cfg)
  init_rng = jax.random.split(jax.random.PRNGKey(config.seed))[0]
  prepared = method_run.prepare(method, model, backbone, init_rng, tokenizer)
  # Last, once every other input is known good: the first write to the workdir.
  check_workdir(workdir, signature, write=is_main)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("workdir checked")
  return _Run(config, workdir, is_main, cfg, backbone, tokenizer, model, method, spec, mesh,
              train_iter, eval_batches, total_steps, optimizer, prepared)


def _check_fits(config, cfg, spec, mesh) -> None:
  """Config values that only fail against the model or the devices."""
  prefix_len = spec.length if spec else 0  # a prefix that cannot fit: train_data.check_budget
  if not config.data.pack_length:  # packed batches round their row count to the devices
    mesh_lib.check_batch_size(config.train.batch_size, mesh)
  elif config.data.pack_length + prefix_len > cfg.max_positions:
    raise ConfigError(f"data.pack_length {config.data.pack_length} + prefix length exceeds the "
                      f"model's max_positions {cfg.max_positions}")


# --- restore ------------------------------------------------------------------------------

def _restore(run: _Run, ckpt: Checkpointer):
  """(state, step_rng, restored?): the latest readable checkpoint, else a fresh state. Only
  once that worked is config.json (re)written, so a failed resume leaves it as it was."""
  step_rng = jax.random.split(jax.random.PRNGKey(run.config.seed))[1]
  prefix_params = run.prepared.trainable["prefix"]
  state = init_state(run.prepared.trainable, run.optimizer)
  restored = ckpt.restore_latest_readable(state)
  if restored is not None:
    state, meta = restored
    run.train_iter.set_state(meta["data"])
    step_rng = jnp.asarray(np.asarray(meta["rng"], np.uint32))
    print(f"resumed from step {int(state.step)}", flush=True)
  if run.is_main:
    _write_atomic(run.workdir / "config.json",
                  run.config.to_json_best_effort(indent=1, sort_keys=True))
    if restored is None and run.spec is not None:
      # The starting point, for "before training" evaluations (e.g. `make demo`).
      export_prefix(run.workdir / "prefix_init.safetensors", run.spec, run.cfg,
                    jax.device_get(prefix_params))
  return state, step_rng, restored is not None


def _write_atomic(path: Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


# --- the step loop ------------------------------------------------------------------------

@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.bool_(True)] + leaves))


class _Compiled:
  """The jitted step and eval functions with the frozen backbone placed on the mesh."""

  def __init__(self, run: _Run, prepared):
    mesh, config = run.mesh, run.config
    self.repl = mesh_lib.replicated(mesh)
    frozen_sh = mesh_lib.backbone_shardings(prepared.frozen, mesh, config.train.fsdp)
    self.frozen = jax.device_put(prepared.frozen, frozen_sh)
    loss_fn = prepared.loss_fn
    self.step = jax.jit(make_train_step(loss_fn, run.optimizer, config.train.accum_steps),
                        in_shardings=(self.repl, frozen_sh, mesh_lib.batch_sharding(mesh),
                                      self.repl),
                        out_shardings=(self.repl, self.repl), donate_argnums=(0,))
    self._eval = jax.jit(functools.partial(trainable_loss, loss_fn))
    self.eval_batches = run.eval_batches

  def eval_loss(self, state) -> float:
    """Mean loss per target token over the held-out batches."""
    total, weight = 0.0, 0.0
    for batch in self.eval_batches:
      loss, m = self._eval(state.trainable, self.frozen, batch)
      total += float(loss) * float(m["target_tokens"])
      weight += float(m["target_tokens"])
    return total / max(weight, 1.0)


def _save(run: _Run, ckpt: Checkpointer, state, step_rng, score: float | None = None) -> None:
  """Saves `state` (to best/ when `score` is given) only if every parameter is finite."""
  step = int(state.step)
  if not bool(_all_finite(state.trainable)):
    raise TrainingDiverged(f"parameters are not finite after step {step}; stopped without "
                           f"saving (last good checkpoint: step {ckpt.latest_step()} in "
                           f"{run.workdir})")
  meta = {"data": run.train_iter.get_state(), "rng": np.asarray(step_rng).tolist(),
          "step": step}
  if score is None:
    ckpt.save(step, state, meta)
  else:
    ckpt.save_best(step, state, meta, score=score)


def _step_loop(run: _Run, ckpt: Checkpointer, state, step_rng, restored: bool, hooks: Hooks,
               stop: preemption.StopRequest):
  """Runs steps until total_steps or a stop signal; returns (state, status, final eval loss
  or None). Every step that ends the loop is saved."""
  if stop.requested:  # a signal during set-up or restore: nothing new to save
    return state, stop.status, None
  config, t = run.config, run.config.train
  compiled = _Compiled(run, run.prepared)
  state = jax.device_put(state, compiled.repl)
  logger = MetricLogger(run.workdir, run.total_steps, int(state.step), enabled=run.is_main)
  window = _LossWindow()
  try:
    if not restored and t.eval_every and compiled.eval_batches:
      logger.write(0, "eval", {"loss": compiled.eval_loss(state)})  # the starting point
    while int(state.step) < run.total_steps and not stop.requested:
      step = int(state.step) + 1
      batch = hooks.before_step(step, run.train_iter.next_batch())
      state, metrics = compiled.step(state, compiled.frozen, mesh_lib.put_batch(batch, run.mesh),
                                     jax.random.fold_in(step_rng, step - 1))
      state = hooks.after_step(step, state)
      loss = float(metrics["loss"])
      if not np.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss} at step {step}; stopped without saving "
                               f"(last good checkpoint: step {ckpt.latest_step()} in "
                               f"{run.workdir})")
      window.add(loss, float(metrics["target_tokens"]))
      logger.advance()
      if step % t.log_every == 0 or step == run.total_steps:
        logger.write(step, "train", window.flush(grad_norm=float(metrics["grad_norm"])))
      if t.eval_every and step % t.eval_every == 0 and compiled.eval_batches:
        eval_loss = compiled.eval_loss(state)
        logger.write(step, "eval", {"loss": eval_loss})
        _save(run, ckpt, state, step_rng, score=-eval_loss)
      if step % t.checkpoint_every == 0 or stop.requested or step == run.total_steps:
        _save(run, ckpt, state, step_rng)
  finally:
    logger.close()
  if stop.requested:
    return state, stop.status, None
  return state, "completed", compiled.eval_loss(state) if compiled.eval_batches else None


class _LossWindow:
  """Mean loss and token throughput over the steps since the last log line."""

  def __init__(self):
    self.t_last, self.tokens, self.loss_sum, self.n = time.time(), 0.0, 0.0, 0

  def add(self, loss: float, tokens: float) -> None:
    self.loss_sum, self.n, self.tokens = self.loss_sum + loss, self.n + 1, self.tokens + tokens

  def flush(self, **extra) -> dict:
    now = time.time()
    row = {"loss": self.loss_sum / self.n, **extra,
           "tokens_per_s": self.tokens / max(now - self.t_last, 1e-9)}
    self.t_last, self.tokens, self.loss_sum, self.n = now, 0.0, 0.0, 0
    return row


# --- finish -------------------------------------------------------------------------------

def _finish(run: _Run, state, status: str, eval_loss: float | None) -> dict:
  """The summary; for a completed run also the final eval loss, the exported prefix and
  the loss curves."""
  summary = {"status": status, "step": int(state.step), "total_steps": run.total_steps,
             **method_run.share_summary(state.trainable, run.backbone),
             "examples_cut": run.train_iter.cut}
  if status == "completed":
    if eval_loss is not None:
      summary["eval_loss"] = eval_loss
    method_run.check_trainable(run.method, state.trainable, run.backbone)
    if run.is_main:
      summary.update(_export(run, state))
    if run.is_main:
      plot_curves(run.workdir)
  if run.is_main:
    _write_atomic(run.workdir / "summary.json", json.dumps(summary, indent=1))
  return summary


def _export(run: _Run, state) -> dict:
  """Writes what the run trained (prefix.safetensors, method.safetensors, an encoder's head)."""
  export_trained_head(run.workdir, run.cfg, jax.device_get(state.trainable["backbone"]))
  out = method_run.export_trained(run.workdir, run.method, run.cfg, state.trainable)
  out["backbone_bytes"] = int(sum(np.asarray(x).nbytes
                                  for x in jax.tree_util.tree_leaves(run.backbone)))
  print(f"exported {out.get('prefix_file') or out.get('method_file')} for a backbone "
        f"of {out['backbone_bytes'] / 1e6:.1f} MB")
  return out
