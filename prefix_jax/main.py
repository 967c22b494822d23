"""Launch a run: `python -m prefix_jax.main --config=configs/e2e.py:model=...,method=prefix
--workdir=DIR [--config.train.batch_size=4 ...] [--noevaluate]`.

Trains (resuming from the workdir's latest checkpoint), exports the prefix, then decodes the
test split, writes `predictions.txt` and `scores.json` (unless `--noevaluate`) and prints the
scores. Bad input exits 2 with one line naming the problem; see `prefix_jax.errors` for the
exit codes and docs/errors.md for the table of bad inputs.
"""
from __future__ import annotations

from prefix_jax import runtime
from prefix_jax.train import preemption

if __name__ == "__main__":  # first thing: a signal during the imports below is not lost, and
  preemption.install()  # malloc is set before JAX starts its threads (see runtime.py)
  runtime.keep_freed_memory()

import json  # noqa: E402
import sys  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from prefix_jax import cli  # noqa: E402
from prefix_jax.errors import EXIT_INTERRUPTED  # noqa: E402
from prefix_jax.evaluate import evaluate_workdir  # noqa: E402
from prefix_jax.train.loop import train_and_evaluate  # noqa: E402


def run(config, workdir, evaluate: bool = True, hooks=None) -> dict:
  """Train (resuming), then decode + score the test split. Exits non-zero on bad input
  (one line), 130 after saving when interrupted by SIGINT."""
  with cli.one_line_errors(config.get("task")):
    summary = train_and_evaluate(config, workdir, hooks=hooks)
    if summary["status"] == "completed" and evaluate:
      summary["scores"] = evaluate_workdir(config, workdir)
  print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']}")
  if summary["status"] == "interrupted":
    cli.fail(f"interrupted at step {summary['step']}/{summary['total_steps']} (saved; run the "
             "same command to resume)", EXIT_INTERRUPTED)
  if "scores" in summary:
    print(json.dumps(summary["scores"], indent=1))
  return summary


def _main_with_flags():
  config = config_flags.DEFINE_config_file("config", None, "config file[:arg]",
                                           lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "directory for checkpoints, logs, outputs")
  evaluate = flags.DEFINE_bool("evaluate", True, "decode and score the test split after training")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(lambda argv: run(config.value, workdir.value, evaluate.value) and None,
          flags_parser=cli.parse_flags)


if __name__ == "__main__":
  runtime.collect_less()  # the imports are done
  _main_with_flags()
