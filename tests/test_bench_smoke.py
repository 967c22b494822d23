"""`python -m benchmarks.bench --quick` runs every section end to end and writes sane JSON."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import decode_prefix
from tiny import CONFIGS

ROOT = Path(__file__).resolve().parent.parent

# Per section: paths (dot-separated) that must hold a positive finite number.
REQUIRED = {
    "train": [f"{arch}.{label}.{field}" for arch in ("gpt2", "llama")
              for label in ("ours_prefix", "ours_full", "torch_full")
              for field in ("seconds.median", "tokens_per_s.median", "peak_rss_mib")]
             + ["gpt2.speedup_vs_faster_full", "gpt2.peak_rss_ratio_vs_faster_full",
                "llama.speedup_vs_faster_full"],
    "peft": [f"{data}.{field}" for data in ("random", "e2e")
             for field in ("ours.tokens_per_s.median", "peft.tokens_per_s.median",
                           "tokens_per_s_ratio", "step1_loss_ours", "step1_loss_peft")],
    "flops": ["matmul_flop_per_s.median", "gpt2_ours_prefix.model_flops",
              "gpt2_ours_prefix.achieved_flop_per_s", "gpt2_ours_prefix.percent_of_matmul",
              "llama_ours_prefix.achieved_flop_per_s"],
    "decode": ["no_prefix.tokens_per_s.median", "kv_prefix.tokens_per_s.median",
               "kv_prefix_over_no_prefix"],
}


def _get(tree, path):
  for key in path.split("."):
    tree = tree[key]
  return tree


def _numbers(tree, prefix=""):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _numbers(v, f"{prefix}{k}.")
  elif isinstance(tree, list):
    for i, v in enumerate(tree):
      yield from _numbers(v, f"{prefix}{i}.")
  elif isinstance(tree, float):
    yield prefix.rstrip("."), tree


@pytest.fixture(scope="module")
def results(tmp_path_factory, shared_dir):
  out = tmp_path_factory.mktemp("bench") / "results.json"
  proc = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--quick", "--out", str(out)],
                        cwd=ROOT, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, PREFIX_JAX_TEST_TORCH="1"))  # torch references
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "targets" in proc.stdout and "command" in proc.stdout
  return json.loads(out.read_text())


@pytest.mark.parametrize("section", sorted(REQUIRED))
def test_section_numbers_are_positive_and_finite(results, section):
  for path in REQUIRED[section]:
    value = _get(results[section], path)
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (path, value)
  for path, value in _numbers(results[section]):
    assert math.isfinite(value), (section, path, value)


def test_peft_step1_loss_agrees(results):
  for data in ("random", "e2e"):
    p = results["peft"][data]
    assert abs(p["step1_loss_ours"] - p["step1_loss_peft"]) <= 1e-3, (data, p)


def test_gpu_section_runs_or_says_why(results):
  gpu = results["gpu"]
  if "skipped" in gpu:
    assert gpu["skipped"].strip()
  else:
    for arch in ("gpt2", "llama"):
      assert gpu[arch]["ours_prefix"]["tokens_per_s"]["median"] > 0


def test_machine_targets_and_command(results):
  assert results["machine"]["cpu_model"] and results["machine"]["usable_cores"] >= 1
  assert "--quick" in results["command"]
  assert {t["name"] for t in results["targets"]} and all(
      isinstance(t["met"], bool) and math.isfinite(t["measured"]) for t in results["targets"])


def test_decode_prefix_bench_runs_on_a_tiny_model(capsys):
  results = decode_prefix.run_bench(CONFIGS["llama"], batch=2, src_len=4, new_tokens=2,
                                    prefix_len=2, repeats=1)
  assert set(results) == {"no prefix", "kv prefix"} and min(results.values()) > 0
  assert "tokens/s" in capsys.readouterr().out
