"""`evaluate` reads the run's config.json, names results by split and config so that no
evaluation overwrites another's, and `main` prints the scores it wrote."""
import json
import sys
from pathlib import Path
from unittest import mock

import pytest
from absl import flags

from prefix_jax import evaluate as evaluate_cli
from prefix_jax.main import run
from run_tiny import tiny_config

ROOT = Path(__file__).resolve().parent.parent
E2E = str(ROOT / "configs" / "e2e.py")


def _evaluate(*args) -> int:
  for name in list(flags.FLAGS):
    if name in ("config", "workdir", "prefix", "split") or name.startswith("config."):
      delattr(flags.FLAGS, name)
  argv = ["prefix_jax.evaluate", *args]
  with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as e:
    evaluate_cli._main_with_flags()
  return e.value.code or 0


def test_main_prints_scores_and_evaluate_never_overwrites_another_result(tmp_path, capfd,
                                                                          shared_dir):
  wd = tmp_path / "run"
  config = tiny_config(E2E, **{"train.num_steps": 1, "optim.learning_rate": 1e-3})
  summary = run(config, wd)
  out = capfd.readouterr().out
  assert json.loads(out[out.index("{"):]) == summary["scores"]  # printed at the end
  scores = (wd / "scores.json").read_text()
  preds = (wd / "predictions.txt").read_text()

  # The run's own config, read from config.json (the flags only name the workdir): the same
  # predictions as main wrote, under the same names.
  assert _evaluate(f"--workdir={wd}") == 0
  assert (wd / "predictions.txt").read_text() == preds
  assert json.loads((wd / "scores.json").read_text()) == json.loads(scores)

  # Another config (a flag override) writes beside, never over, the run's results.
  assert _evaluate(f"--workdir={wd}", "--config.decode.max_new_tokens=2") == 0
  other = sorted(p.name for p in wd.glob("predictions.test-*.txt"))
  assert len(other) == 1 and (wd / other[0].replace("predictions", "scores")
                              .replace(".txt", ".json")).exists()
  assert (wd / "predictions.txt").read_text() == preds
  assert json.loads((wd / "scores.json").read_text()) == json.loads(scores)

  # Another task's config file on this workdir: its own names again.
  assert _evaluate(f"--workdir={wd}", f"--config={E2E}:model=tiny-llama",
                   "--config.prefix.mlp_hidden=16", "--config.decode.num_examples=4",
                   "--config.decode.beam_size=1", "--config.decode.max_new_tokens=4",
                   "--config.data.max_source_len=24", "--config.data.max_target_len=16") == 0
  assert len(list(wd.glob("predictions.test-*.txt"))) == 2
  assert (wd / "predictions.txt").read_text() == preds
