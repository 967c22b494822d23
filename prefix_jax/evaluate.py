"""Decode a split with a trained prefix and score it: `predictions.txt` and `scores.json`.

`python -m prefix_jax.evaluate --workdir=DIR [--config=configs/e2e.py] [--split=S]
[--prefix=FILE] [--config.decode.beam_size=5 ...]`. The config defaults to the run's own
(WORKDIR/config.json); results of another split or config get their own file names
(`results_names`), so nothing another evaluation wrote is overwritten.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import ml_collections
from absl import app, flags
from ml_collections import config_flags

import jax
import numpy as np

from prefix_jax import cli, metrics, runtime
from prefix_jax.metrics.names import config_subset
from prefix_jax.decode import DecodeConfig, generate_dataset
from prefix_jax.decode.dataset import newline_ids, write_lines_atomic
from prefix_jax.models import build_model
from prefix_jax.train import data as train_data
from prefix_jax.train.backbone import load_backbone
from prefix_jax.train.heads import load_head, task_backbone
from prefix_jax.train.loss import model_kind
from prefix_jax.train.method_run import trained_weights


def decode_config(config, tokenizer, vocab_size: int) -> DecodeConfig:
  d = config.decode
  banned = newline_ids(tokenizer, vocab_size) if d.ban_newlines else ()
  return DecodeConfig(max_new_tokens=d.max_new_tokens, num_beams=d.beam_size,
                      min_length=d.min_length, eos_id=tokenizer.eos_id,
                      pad_id=tokenizer.pad_id if tokenizer.pad_id is not None else 0,
                      banned_ids=banned, length_penalty=d.length_penalty,
                      no_repeat_ngram_size=d.get("no_repeat_ngram_size", 0))


def classify_split(config, workdir, model, backbone, prefix, tokenizer, split, out_path,
                   delta=None):
  """Label words predicted for `split` by an encoder with its trained head (`head.safetensors`
  of `workdir`) and the method's `delta` (or None), written one per line; returns
  (predictions, references)."""
  backbone = load_head(workdir, backbone)
  words = train_data.label_words(config)
  gold, batches = train_data.classification_batches(config, tokenizer, split)
  logits_fn = jax.jit(lambda params, p, d, inputs, mask: model.apply(
      {"params": params}, inputs, prefix=p, mask=mask, delta=d).logits)
  preds = []
  for b in batches:
    p = prefix.gather(b["task"]) if prefix is not None and prefix.batched else prefix
    labels = np.argmax(np.asarray(logits_fn(backbone, p, delta, b["inputs"], b["mask"])), -1)
    preds.extend(words[i] for i in labels[b["valid"]])
  write_lines_atomic(out_path, preds)
  return preds, [[g] for g in gold], {}


def generate_split(config, model, backbone, prefix, spec, tokenizer, split, out_path,
                   delta=None):
  """Decoded predictions of `split` (decoder-only or encoder-decoder) with the method's
  `delta` (or None); an infix sits between each source and its generated target, as in
  training. Returns (predictions, references, extra metric kwargs)."""
  refs, extra, batches = train_data.generation_batches(config, tokenizer, model.cfg, split)
  if spec is None or not spec.num_tasks:  # task ids matter only for a prefix bank
    batches = [{k: v for k, v in b.items() if k != "task"} for b in batches]
  infix = spec is not None and spec.placement == "infix"
  preds = generate_dataset(model, backbone, prefix, batches, tokenizer, out_path=out_path,
                           config=decode_config(config, tokenizer, model.cfg.vocab_size),
                           infix=infix, delta=delta)
  return preds, refs, extra


def evaluate_workdir(config, workdir, *, prefix_file=None, split: str | None = None,
                     out_name: str = "predictions.txt", scores_name: str = "scores.json",
                     backbone_bundle=None) -> dict:
  """Decodes (or, for an encoder, classifies) `split` (default: config.data.test_split) and
  writes predictions + scores."""
  workdir = Path(workdir)
  only = config_subset(config)  # a bad name fails before decoding
  cfg, backbone, tokenizer = backbone_bundle or load_backbone(config.model, seed=config.seed)
  cfg, backbone = task_backbone(config, cfg, backbone)
  train_data.check_budget(config, cfg)
  model = build_model(cfg)
  backbone, prefix, spec, delta = trained_weights(config, cfg, backbone, workdir, prefix_file)
  split = split or config.data.test_split
  out_path = workdir / out_name
  if model_kind(cfg) == "encoder":
    preds, refs, extra = classify_split(config, workdir, model, backbone, prefix, tokenizer,
                                        split, out_path, delta)
  else:
    preds, refs, extra = generate_split(config, model, backbone, prefix, spec, tokenizer, split,
                                        out_path, delta)
  scores = metrics.score(config.task, preds, refs, only=only, **extra)
  metrics.write_scores(workdir / scores_name, scores)
  return dict(scores)


def results_names(config, run_config: dict | None, split: str,
                  prefix_file: str | None = None) -> tuple[str, str]:
  """(predictions file, scores file) for decoding `split` with `config` (and `prefix_file`,
  None: the run's own) in a workdir whose run was configured as `run_config` (its
  config.json). The run's own config and prefix on its test split write predictions.txt /
  scores.json (what `main` writes); any other split, config or prefix gets its own names, so
  one evaluation never overwrites another's results."""
  mine = json.loads(config.to_json_best_effort(sort_keys=True))
  same = run_config is not None and mine == run_config and prefix_file is None
  if same and split == config.data.test_split:
    return "predictions.txt", "scores.json"
  key = json.dumps([mine, str(prefix_file)], sort_keys=True).encode()
  tag = split if same else f"{split}-{hashlib.sha1(key).hexdigest()[:8]}"
  return f"predictions.{tag}.txt", f"scores.{tag}.json"


def _argv_value(argv: list[str], name: str) -> str | None:
  """The value of `--name=V` / `--name V` in argv, before absl parses it."""
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _run_config(workdir) -> dict | None:
  path = Path(workdir) / "config.json" if workdir else None
  if path is None or not path.is_file():
    return None
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    cli.fail(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); pass --config=FILE")


def _main_with_flags(argv=None):
  """Flags: --workdir (required), --config (default: the workdir's config.json; `--config.x.y`
  overrides either), --prefix, --split."""
  argv = sys.argv if argv is None else argv
  run_config = _run_config(_argv_value(argv, "workdir"))
  if _argv_value(argv, "config") is None and run_config is not None:
    try:  # a config dict flag applies the `--config.x.y` overrides as it is defined
      config = config_flags.DEFINE_config_dict("config", ml_collections.ConfigDict(run_config),
                                               lock_config=True)
    except Exception as e:
      cli.fail(cli.flag_error_line(e, argv))
  else:
    config = config_flags.DEFINE_config_file("config", None, "config file[:arg] (default: "
                                             "WORKDIR/config.json)", lock_config=True)
    flags.mark_flag_as_required("config")
  workdir = flags.DEFINE_string("workdir", None, "run directory holding prefix.safetensors")
  prefix = flags.DEFINE_string("prefix", None, "prefix file (default: WORKDIR/prefix.safetensors)")
  split = flags.DEFINE_string("split", None, "split (default: config.data.test_split)")
  flags.mark_flag_as_required("workdir")

  def main(argv):
    del argv
    split_name = split.value or config.value.data.test_split
    out_name, scores_name = results_names(config.value, run_config, split_name, prefix.value)
    with cli.one_line_errors(config.value.get("task")):
      scores = evaluate_workdir(config.value, workdir.value, prefix_file=prefix.value,
                                split=split_name, out_name=out_name, scores_name=scores_name)
    print(json.dumps(scores, indent=1))

  app.run(main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  runtime.collect_less()  # the imports are done
  _main_with_flags()
