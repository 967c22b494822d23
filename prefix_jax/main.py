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

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file[:arg]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints, logs, outputs")
_EVALUATE = flags.DEFINE_bool("evaluate", True, "decode and score the test split after training")
flags.mark_flags_as_required(["config", "workdir"])

# Errors that mean "bad input": one line, exit 2, nothing on disk touched.
def _user_errors():
  from prefix_jax.data.sources import DataUnavailableError
  from prefix_jax.prefixes import PrefixShapeError
  from prefix_jax.train.checkpoint import WorkdirError
  from prefix_jax.train.export import PrefixFileError
  from prefix_jax.train.loop import ConfigError
  from prefix_jax.train.mesh import MeshConfigError
  from prefix_jax.train.optim import OptimConfigError
  from prefix_jax.weights.errors import WeightsError
  return (ConfigError, WorkdirError, PrefixShapeError, MeshConfigError, OptimConfigError,
          WeightsError, DataUnavailableError, PrefixFileError, FileNotFoundError)


def main(argv):
  del argv
  from prefix_jax.train.loop import TrainingDiverged, train_and_evaluate
  config = _CONFIG.value
  try:
    summary = train_and_evaluate(config, _WORKDIR.value)
    if summary["status"] == "completed" and _EVALUATE.value:
      from prefix_jax.evaluate import evaluate_workdir
      evaluate_workdir(config, _WORKDIR.value)
  except TrainingDiverged as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3)
  except _user_errors() as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']}")


if __name__ == "__main__":
  app.run(main)
