"""P-tuning v2 on the real all-MiniLM-L6-v2 (SST-2, classification head): a short run of the
trainer (512 training sentences, 64 steps) beats the majority class on 200 dev sentences."""
import json
from collections import Counter

from prefix_jax.data import read_split
from prefix_jax.evaluate import evaluate_workdir
from prefix_jax.train.loop import train_and_evaluate
from run_tiny import load_config


def test_minilm_prefix_and_head_beat_the_majority_class(tmp_path, shared_dir):
  config = load_config("configs/sst2_cls.py", "model=minilm-l6,n=512,steps=64,batch=16,lr=0.05")
  config.optim.schedule = "constant"
  config.train.num_epochs = 0
  config.data.max_source_len = 40
  config.data.num_eval_loss_examples = 0
  config.decode.num_examples = 200
  summary = train_and_evaluate(config, tmp_path / "run")
  assert summary["trainable_params"] < summary["backbone_params"] / 100
  scores = evaluate_workdir(config, tmp_path / "run")
  assert json.loads((tmp_path / "run" / "scores.json").read_text()) == scores
  assert len((tmp_path / "run" / "predictions.txt").read_text().splitlines()) == 200
  labels = [r["label"] for r in read_split("sst2", "validation")[:200]]
  majority = Counter(labels).most_common(1)[0][1] / len(labels)
  assert scores["accuracy"] > majority + 0.05, (scores, majority)
