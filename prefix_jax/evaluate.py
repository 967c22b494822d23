"""Decode a split with a trained prefix and score it: `predictions.txt` and `scores.json`.

`python -m prefix_jax.evaluate --config=configs/e2e.py --workdir=DIR [--prefix=FILE]`
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from prefix_jax.decode import DecodeConfig, generate_dataset
from prefix_jax.decode.dataset import newline_ids
from prefix_jax.models import build_model
from prefix_jax.methods import trained_weights


def decode_config(config, tokenizer, vocab_size: int) -> DecodeConfig:
  d = config.decode
  banned = newline_ids(tokenizer, vocab_size) if d.ban_newlines else ()
  return DecodeConfig(max_new_tokens=d.max_new_tokens, num_beams=d.beam_size,
                      min_length=d.min_length, eos_id=tokenizer.eos_id,
                      pad_id=tokenizer.pad_id if tokenizer.pad_id is not None else 0,
                      banned_ids=banned, length_penalty=d.length_penalty)


def evaluate_workdir(config, workdir, *, prefix_file=None, split: str | None = None,
                     out_name: str = "predictions.txt", scores_name: str = "scores.json",
                     backbone_bundle=None) -> dict:
  """Decodes `split` (default: config.data.test_split) and writes predictions + scores."""
  from prefix_jax import metrics
  from prefix_jax.train import data as train_data
  from prefix_jax.train.backbone import load_backbone
  workdir = Path(workdir)
  cfg, backbone, tokenizer = backbone_bundle or load_backbone(config.model, seed=config.seed)
  model = build_model(cfg)
  backbone, prefix = trained_weights(config, cfg, backbone, workdir, prefix_file)
  split = split or config.data.test_split
  refs, extra, batches = train_data.generation_batches(config, tokenizer, cfg, split)
  if prefix is None or not prefix.batched:  # task ids matter only for a prefix bank
    batches = [{k: v for k, v in b.items() if k != "task"} for b in batches]
  preds = generate_dataset(model, backbone, prefix, batches, tokenizer,
                           out_path=workdir / out_name, config=decode_config(config, tokenizer, cfg.vocab_size))
  scores = metrics.score(config.task, preds, refs, **extra)
  metrics.write_scores(workdir / scores_name, scores)
  return dict(scores)


def _main_with_flags():
  config = config_flags.DEFINE_config_file("config", None, "config file[:arg]",
                                           lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "run directory holding prefix.safetensors")
  prefix = flags.DEFINE_string("prefix", None, "prefix file (default: WORKDIR/prefix.safetensors)")
  split = flags.DEFINE_string("split", None, "split (default: config.data.test_split)")
  flags.mark_flags_as_required(["config", "workdir"])

  def main(argv):
    del argv
    from prefix_jax.main import user_errors
    try:
      scores = evaluate_workdir(config.value, workdir.value, prefix_file=prefix.value,
                                split=split.value)
    except user_errors() as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    print(json.dumps(scores, indent=1))

  app.run(main)


if __name__ == "__main__":
  _main_with_flags()
