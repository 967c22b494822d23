"""Methods through the trainer on BERT (configs/sst2_cls.py, classification head) and BART
(configs/xsum.py on the XSUM fixture), not only the forward: a few steps train exactly the
method's parameters (and an encoder task's head), the rest of the backbone is exported
untouched, and `evaluate` scores the run with them."""
import json
from pathlib import Path

import numpy as np
import pytest
from flax import traverse_util

from prefix_jax.evaluate import evaluate_workdir
from prefix_jax.train.backbone import load_backbone
from prefix_jax.train.heads import HEAD_FILE, task_backbone
from prefix_jax.train.loop import train_and_evaluate
from prefix_jax.train.method_run import METHOD_FILE, load_trained
from run_tiny import tiny_config
from task_fixtures import shared_with_xsum

ROOT = Path(__file__).resolve().parent.parent
HEAD = ("classifier/kernel", "classifier/bias")


@pytest.mark.parametrize("task,method", [("sst2_cls", "lora"), ("sst2_cls", "bitfit"),
                                         ("xsum", "adapter")])
def test_method_trains_and_evaluates(task, method, tmp_path, monkeypatch, shared_dir):
  config = tiny_config(str(ROOT / "configs" / f"{task}.py"), f"method={method}",
                       **{"train.num_steps": 2, "data.num_train_examples": 8,
                          "optim.learning_rate": 1e-2, "decode.num_examples": 2,
                          "decode.max_new_tokens": 2})
  config.adapter.dim = 4
  if task == "xsum":
    shared_with_xsum(tmp_path, monkeypatch)
  wd = tmp_path / "run"
  summary = train_and_evaluate(config, wd)
  assert summary["step"] == 2 and np.isfinite(summary["eval_loss"])
  cfg, backbone, _ = load_backbone(config.model, seed=config.seed)
  cfg, backbone = task_backbone(config, cfg, backbone)
  flat = traverse_util.flatten_dict(backbone, sep="/")
  _, leaves, delta, _ = load_trained(wd / METHOD_FILE, cfg)
  head = HEAD if task == "sst2_cls" else ()
  if method == "bitfit":
    want = sorted({k for k in flat if k.endswith("/bias")} | set(head))
  else:
    want = sorted(head)
    # The zero-initialized half (LoRA's B, the adapter's up projection) moved.
    inits = [v for k, v in traverse_util.flatten_dict(delta, sep="/").items()
             if k.endswith(("/b", "up/kernel"))]
    assert inits and all(np.abs(v).max() > 0 for v in inits)
  assert sorted(leaves) == want  # the method's leaves, no other backbone array
  assert not want or any(not np.array_equal(leaves[k], flat[k]) for k in want)
  if head:
    assert (wd / HEAD_FILE).exists()
  scores = evaluate_workdir(config, wd)
  assert json.loads((wd / "scores.json").read_text()) == scores
  metric = "accuracy" if task == "sst2_cls" else "rouge_l"
  assert np.isfinite(scores[metric])
  assert (wd / "predictions.txt").read_text().splitlines()
