"""`make demo`: prefix-tune SmolLM2-135M on E2E for 100 CPU steps; BLEU before/after.

python -m experiments.demo [--workdir=runs/demo] [--config=configs/demo.py[:arg]]

Compiles through JAX's persistent compilation cache (`PREFIX_JAX_COMPILATION_CACHE`, default
`~/.cache/prefix_jax/jax_compilation`; `0` turns it off): a second run loads its programs.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "demo config")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "run directory")


def _table(rows: list[tuple[str, str]]) -> str:
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def main(argv):
  del argv
  from prefix_jax import paths, runtime
  from prefix_jax.evaluate import evaluate_workdir
  from prefix_jax.cli import one_line_errors
  from prefix_jax.train.backbone import load_backbone
  from prefix_jax.train.loop import train_and_evaluate
  config, workdir = _CONFIG.value, Path(_WORKDIR.value)
  if not paths.shared_dir().exists():
    print(f"error: the shared data folder {paths.shared_dir()} is absent and no dataset URL is "
          "reachable offline; set PREFIX_JAX_SHARED to it", file=sys.stderr)
    sys.exit(2)
  t0 = time.time()
  cache = runtime.use_compilation_cache()
  compiles = runtime.CompileCounter()
  with one_line_errors():
    bundle = load_backbone(config.model, seed=config.seed)
    summary = train_and_evaluate(config, workdir, backbone_bundle=bundle)
    if summary["status"] != "completed":
      print(f"run {summary['status']} at step {summary['step']}; rerun to resume")
      return
    before = evaluate_workdir(config, workdir, prefix_file=workdir / "prefix_init.safetensors",
                              out_name="predictions_before.txt",
                              scores_name="scores_before.json", backbone_bundle=bundle)
    after = evaluate_workdir(config, workdir, backbone_bundle=bundle)
  rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in rows if r["split"] == "train"]
  evals = [r for r in rows if r["split"] == "eval"]
  tps = statistics.median(r["tokens_per_s"] for r in train[1:] or train)
  preds = (workdir / "predictions.txt").read_text().splitlines()
  print("\nprefix-tuning demo:", config.model, "on E2E,", summary["step"], "steps")
  print(_table([
      ("trainable / backbone params",
       f"{summary['trainable_params']:,} / {summary['backbone_params']:,} "
       f"({100 * summary['trainable_params'] / summary['backbone_params']:.3f}%)"),
      ("prefix file / backbone size",
       f"{summary['prefix_bytes'] / 1e3:.1f} kB / {summary['backbone_bytes'] / 1e6:.0f} MB"),
      ("train loss first -> last", f"{train[0]['loss']:.3f} -> {train[-1]['loss']:.3f}"),
      ("eval loss first -> last",
       f"{evals[0]['loss']:.3f} -> {summary['eval_loss']:.3f}" if evals else "n/a"),
      (f"BLEU on {len(preds)} test MRs before -> after",
       f"{before['bleu']:.2f} -> {after['bleu']:.2f}"),
      ("ROUGE-L before -> after", f"{before['rouge_l']:.3f} -> {after['rouge_l']:.3f}"),
      ("train target tokens/s (median)", f"{tps:.0f}"),
      ("wall time", f"{time.time() - t0:.0f} s"),
      ("compiled", compiles.summary() + (f" ({cache})" if cache else " (cache off)")),
  ]))
  print("\nexample:", preds[0] if preds else "")
  print(f"outputs in {workdir}: predictions.txt, scores.json, curves.png, metrics.jsonl")


if __name__ == "__main__":
  from prefix_jax.runtime import collect_less, keep_freed_memory
  keep_freed_memory()  # as `prefix_jax.main` does, before JAX starts its threads
  collect_less()  # the imports are done
  app.run(main)
