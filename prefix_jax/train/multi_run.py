"""Training K members as one program (`train.multi`): setup, loop, checkpoints, per-member export.

`train_members(configs, member_workdirs, group_workdir)` trains the K configs together (they
must share the backbone, the step count and the prefix form), checkpointing the whole group in
`group_workdir` (re-running resumes), and writes into each member's workdir what an ordinary
run writes: `prefix.safetensors`, `config.json`, `summary.json`.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from prefix_jax.models import build_model
from prefix_jax.prefixes import PrefixSpec, count_params, init_prefix
from prefix_jax.train import data as train_data
from prefix_jax.train.backbone import TINY, load_backbone
from prefix_jax.train.checkpoint import Checkpointer, check_workdir
from prefix_jax.train.export import export_prefix
from prefix_jax.train.logger import MetricLogger
from prefix_jax.train.loop import TrainingDiverged, run_signature, validate_config
from prefix_jax.train.multi import (MultiConfigError, combine_batches, init_multi_state,
                                    make_multi_step, multi_loss)
from prefix_jax.train.optim import build_optimizer


def backbone_key(config) -> tuple:
  """What decides the frozen backbone (a tiny random one also depends on the seed)."""
  return (config.model, config.seed if config.model in TINY else None, config.dtype,
          config.train.remat)


def _same(configs, what: str, fn) -> None:
  values = [fn(c) for c in configs]
  if len(set(map(repr, values))) > 1:
    raise MultiConfigError(f"one program needs one {what} for every member, got {values}")


def check_members(configs) -> None:
  if not configs:
    raise MultiConfigError("one program needs at least one member")
  for c in configs:
    validate_config(c)
    if c.method == "finetune":
      raise MultiConfigError("method=finetune trains the backbone; one program trains "
                             "prefixes on one frozen backbone")
    if c.data.pack_length or c.data.padding != "right" or c.train.accum_steps != 1:
      raise MultiConfigError("one program needs data.pack_length=0, data.padding='right' and "
                             "train.accum_steps=1 for every member")
    if c.train.trainable_pattern:
      raise MultiConfigError("one program trains prefixes only (train.trainable_pattern set)")
  _same(configs, "backbone (model, tiny seed, dtype, remat)", backbone_key)
  _same(configs, "prefix form and placement", lambda c: (c.prefix.method, c.prefix.placement))


class _Member:
  """One member's spec, data iterator, optimizer and initial parameters."""

  def __init__(self, config, cfg, model, backbone, tokenizer):
    self.config = config
    self.spec = PrefixSpec.from_config(config.prefix)
    self.data = train_data.train_iterator(config, tokenizer, cfg)
    t = config.train
    self.total_steps = t.num_steps or t.num_epochs * self.data.steps_per_epoch
    self.optimizer = build_optimizer(config.optim, self.total_steps)
    init_rng, _ = jax.random.split(jax.random.PRNGKey(config.seed))
    self.params = init_prefix(self.spec, cfg, init_rng, model=model, backbone=backbone,
                              tokenizer=tokenizer)


def _setup(configs, group_workdir: Path):
  first = configs[0]
  cfg, backbone, tokenizer = load_backbone(first.model, seed=first.seed, dtype="float32")
  dtype = jnp.bfloat16 if first.dtype == "bfloat16" else jnp.float32
  model = build_model(cfg, dtype, remat=first.train.remat)
  members = [_Member(c, cfg, model, backbone, tokenizer) for c in configs]
  _same(members, "number of training steps", lambda m: m.total_steps)
  check_workdir(group_workdir, {"one_program": [run_signature(c, cfg, m.spec)
                                                for c, m in zip(configs, members)]})
  return cfg, backbone, tokenizer, model, members


def train_members(configs, member_workdirs, group_workdir) -> list[dict]:
  """Trains the members as one program (resuming from group_workdir); returns their summaries."""
  check_members(configs)
  if len(member_workdirs) != len(configs):
    raise MultiConfigError(f"{len(configs)} members but {len(member_workdirs)} workdirs")
  group_workdir = Path(group_workdir)
  cfg, backbone, tokenizer, model, members = _setup(configs, group_workdir)
  optimizers = [m.optimizer for m in members]
  state = init_multi_state([m.params for m in members], optimizers)
  ckpt = Checkpointer(group_workdir, keep=configs[0].train.keep_checkpoints)
  restored = ckpt.restore(state)
  if restored is not None:
    state, meta = restored
    for m, data_state in zip(members, meta["data"]):
      m.data.set_state(data_state)
    logging.info("one program: resumed from step %d", int(state.step))
  loss_fn = functools.partial(multi_loss, model=model, specs=[m.spec for m in members])
  step_fn = jax.jit(make_multi_step(loss_fn, optimizers), donate_argnums=(0,))
  state = _loop(configs[0], members, state, step_fn, backbone, tokenizer, ckpt, group_workdir)
  ckpt.close()
  return [_finish(m, cfg, backbone, p, wd, int(state.step), group_workdir)
          for m, p, wd in zip(members, state.trainable, member_workdirs)]


def _loop(config, members, state, step_fn, backbone, tokenizer, ckpt, group_workdir):
  total = members[0].total_steps
  pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else tokenizer.eos_id
  logger = MetricLogger(group_workdir, total, int(state.step))
  try:
    while int(state.step) < total:
      batch = combine_batches([m.data.next_batch() for m in members], pad_id)
      state, metrics = step_fn(state, backbone, batch)
      step = int(state.step)
      loss = float(metrics["loss"])
      if not np.isfinite(loss):
        raise TrainingDiverged(f"one program: loss is {loss} at step {step}; stopped without "
                               f"saving (last good checkpoint: step {ckpt.latest_step()})")
      logger.advance()
      if step % config.train.log_every == 0 or step == total:
        logger.write(step, "train", {"loss": loss, **{
            f"grad_norm_{k}": g for k, g in enumerate(np.asarray(metrics["grad_norm"]))}})
      if step % config.train.checkpoint_every == 0 or step == total:
        ckpt.save(step, state, {"data": [m.data.get_state() for m in members], "step": step})
  finally:
    logger.close()
  return state


def _finish(member, cfg, backbone, params, workdir, step, group_workdir) -> dict:
  """What an ordinary completed run leaves in its workdir: prefix file, config, summary."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(
      member.config.to_json_best_effort(indent=1, sort_keys=True))
  path = export_prefix(workdir / "prefix.safetensors", member.spec, cfg, jax.device_get(params))
  n_prefix, n_backbone = count_params(params), count_params(backbone)
  summary = {"status": "completed", "step": step, "total_steps": member.total_steps,
             "trainable_params": n_prefix, "backbone_params": n_backbone,
             "trainable_share": n_prefix / n_backbone, "prefix_file": str(path),
             "prefix_bytes": path.stat().st_size, "one_program": str(group_workdir)}
  (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
  return summary
