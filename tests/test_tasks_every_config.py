"""Every config in configs/ trains one step and evaluates end to end at tiny size, and its
scores.json holds the task's metrics. XSUM runs on a fixture in XSUM's raw format (so the
reader parses real .summary files); configs/xsum.py on a random BART written by transformers,
decoded with beam search (6 beams, no repeated trigram)."""
import glob
import json
from pathlib import Path

import numpy as np
import pytest

from prefix_jax.evaluate import evaluate_workdir
from prefix_jax.metrics.names import config_subset
from prefix_jax.train.loop import train_and_evaluate
from run_tiny import tiny_config
from task_fixtures import shared_with_xsum, tiny_hf_bart

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(glob.glob(str(ROOT / "configs" / "*.py")))
METRICS = {"e2e": {"bleu", "nist", "meteor", "rouge_l", "cider"},
           "webnlg": {"bleu_all", "meteor_all", "ter_all"},
           "dart": {"bleu", "meteor", "ter"}, "xsum": {"rouge_1", "rouge_2", "rouge_l"},
           "sst2": {"accuracy"}}


@pytest.mark.parametrize("path", CONFIGS, ids=[Path(p).stem for p in CONFIGS])
def test_config_trains_one_step_and_evaluates(path, tmp_path, monkeypatch, shared_dir):
  config = tiny_config(path, **{"train.num_steps": 1, "decode.num_examples": 2,
                                "decode.max_new_tokens": 2, "data.num_train_examples": 8})
  if config.task == "xsum":
    shared_with_xsum(tmp_path, monkeypatch)
  if config.model == "tiny-bart":
    tiny_hf_bart(tmp_path / "bart")
    config.model = str(tmp_path / "bart")
    config.prefix.length = 4
    config.decode.update(dict(beam_size=6, max_new_tokens=6, min_length=2))
  summary = train_and_evaluate(config, tmp_path / "run")
  assert summary["step"] == 1 and np.isfinite(summary["eval_loss"])
  scores = evaluate_workdir(config, tmp_path / "run")
  written = json.loads((tmp_path / "run" / "scores.json").read_text())
  asked = config_subset(config)  # configs/demo.py scores only what it prints
  assert set(written) >= (asked or METRICS[config.task]), (config.task, sorted(written))
  assert all(np.isfinite(v) for v in scores.values() if isinstance(v, float))
  lines = (tmp_path / "run" / "predictions.txt").read_text().splitlines()
  assert len(lines) == 2
