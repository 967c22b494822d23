"""Launch a run: `python -m prefix_jax.main --config=configs/e2e.py:model=...,method=prefix
--workdir=DIR [--config.train.batch_size=4 ...] [--evaluate]`.

Trains (resuming from the workdir's latest checkpoint), exports the prefix, then decodes the
test split and writes `predictions.txt` and `scores.json` (unless `--noevaluate`).
Bad input exits non-zero with one line naming the problem.
"""
from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags


# Errors that mean "bad input": one line, exit 2, nothing on disk touched.
def user_errors():
  from prefix_jax.data.batching import PackingError
  from prefix_jax.data.sources import DataUnavailableError
  from prefix_jax.data.tasks import SplitSchemeError
  from prefix_jax.methods import MethodError
  from prefix_jax.prefixes import PrefixShapeError
  from prefix_jax.train.checkpoint import WorkdirError
  from prefix_jax.train.export import PrefixFileError
  from prefix_jax.train.loop import ConfigError
  from prefix_jax.train.mesh import MeshConfigError
  from prefix_jax.train.data import BudgetError
  from prefix_jax.train.heads import HeadFileError
  from prefix_jax.train.optim import OptimConfigError
  from prefix_jax.weights.errors import WeightsError
  return (ConfigError, WorkdirError, PrefixShapeError, MeshConfigError, OptimConfigError,
          WeightsError, DataUnavailableError, PrefixFileError, PackingError, FileNotFoundError,
          BudgetError, HeadFileError, SplitSchemeError, MethodError)


def run(config, workdir, evaluate: bool = True) -> dict:
  """Train (resuming), then decode + score the test split. Exits non-zero on bad input."""
  from prefix_jax.train.loop import TrainingDiverged, train_and_evaluate
  try:
    summary = train_and_evaluate(config, workdir)
    if summary["status"] == "completed" and evaluate:
      from prefix_jax.evaluate import evaluate_workdir
      summary["scores"] = evaluate_workdir(config, workdir)
  except TrainingDiverged as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3)
  except user_errors() as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']}")
  return summary


def _main_with_flags():
  config = config_flags.DEFINE_config_file("config", None, "config file[:arg]",
                                           lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "directory for checkpoints, logs, outputs")
  evaluate = flags.DEFINE_bool("evaluate", True, "decode and score the test split after training")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(lambda argv: run(config.value, workdir.value, evaluate.value) and None)


if __name__ == "__main__":
  from prefix_jax.runtime import keep_freed_memory
  keep_freed_memory()  # before JAX starts its threads (see prefix_jax/runtime.py)
  _main_with_flags()
