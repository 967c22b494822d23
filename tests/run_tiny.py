"""Runs a config at tiny size in a subprocess-friendly way: `python tests/run_tiny.py CONFIG
WORKDIR [key=value ...]` (used by the trainer tests for SIGKILL / SIGTERM / multi-device).

Faults come from environment variables, turned into the trainer's `Hooks`:
PREFIX_JAX_TEST_{TERM,INT,KILL}_AT=N sends SIGTERM / SIGINT / SIGKILL to the run after step N;
PREFIX_JAX_TEST_{TERM,INT}_BEFORE=N,SECONDS sends it that long after step N starts (step 1:
during its compilation); PREFIX_JAX_TEST_{TERM,INT}_AT_PHASE=NAME as the section NAME starts
('set-up', 'restore', 'loop', 'finish').
"""
import importlib.util
import json
import os
import signal
import sys
import threading
import time

# The tiny random backbone of each default model's architecture.
TINY_FOR = {"gpt2": "tiny-gpt2", "bart": "tiny-bart", "minilm": "tiny-bert", "bert": "tiny-bert"}


def load_config(path, arg=None):
  """`get_config(arg)` of a config file."""
  return _module(path).get_config(arg)


def _module(path):
  spec = importlib.util.spec_from_file_location("cfg", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def tiny_config(path, arg="", **overrides):
  mod = _module(path)
  default = mod.get_config()
  arch = next((tiny for key, tiny in TINY_FOR.items() if key in default.model), "tiny-llama")
  c = mod.get_config(",".join(x for x in (f"model={arch}", arg) if x))
  c.train.num_epochs = 0
  c.train.num_steps = 4
  c.train.batch_size = 4
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.eval_every = 0
  c.data.max_source_len = 24
  c.data.max_target_len = 16
  c.data.num_eval_loss_examples = 4
  c.data.num_train_examples = 0
  c.decode.num_examples = 4
  c.decode.beam_size = 1
  c.decode.max_new_tokens = 4
  c.decode.batch_size = 4
  c.prefix.mlp_hidden = 16
  for k, v in overrides.items():
    node = c
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  return c


def _kill_self(sig, delay=0.0):
  if delay:
    threading.Timer(delay, os.kill, (os.getpid(), sig)).start()
  else:
    os.kill(os.getpid(), sig)
    time.sleep(0.1)  # let the handler run before the loop checks the flag


def hooks_from_env(env=os.environ):
  from prefix_jax.train.loop import Hooks
  sigs = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "KILL": signal.SIGKILL}
  at_step = {int(env[f"PREFIX_JAX_TEST_{k}_AT"]): s for k, s in sigs.items()
             if env.get(f"PREFIX_JAX_TEST_{k}_AT")}
  at_phase = {env[f"PREFIX_JAX_TEST_{k}_AT_PHASE"]: s for k, s in sigs.items()
              if env.get(f"PREFIX_JAX_TEST_{k}_AT_PHASE")}
  before = {env[f"PREFIX_JAX_TEST_{k}_BEFORE"]: s for k, s in sigs.items()
            if env.get(f"PREFIX_JAX_TEST_{k}_BEFORE")}

  def before_step(step, batch):
    for spec, sig in before.items():
      at, _, delay = spec.partition(",")
      if int(at) == step:
        _kill_self(sig, float(delay or 0))
    return batch

  def after_step(step, state):
    if step in at_step:
      _kill_self(at_step[step])
    return state

  def on_phase(name):
    if name in at_phase:
      _kill_self(at_phase[name])

  return Hooks(on_phase=on_phase, before_step=before_step, after_step=after_step)


if __name__ == "__main__":
  from prefix_jax import runtime
  from prefix_jax.main import run
  import probe
  import jax
  runtime.collect_less()  # as `python -m prefix_jax.main` does after its imports
  probe.install()
  cfg_path, workdir, *rest = sys.argv[1:]
  kv = dict(x.split("=", 1) for x in rest)
  overrides = {k: json.loads(v) for k, v in kv.items()}
  summary = run(tiny_config(cfg_path, **overrides), workdir, evaluate=False,
                hooks=hooks_from_env())
  print(f"processes={jax.process_count()} devices={jax.device_count()}")
  print(probe.report())
