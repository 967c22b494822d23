"""The context budget is checked up front: a prefix that cannot fit is a one-line error before
anything compiles (and exit 2 on the command line); examples over the configured maxima are cut
and counted, or refused."""
import subprocess
import sys
from pathlib import Path

import pytest

from prefix_jax.train.data import BudgetError
from prefix_jax.train.loop import train_and_evaluate
from conftest import with_xla_flags
from run_tiny import tiny_config
from task_fixtures import shared_with_xsum

ROOT = Path(__file__).resolve().parent.parent
E2E = str(ROOT / "configs" / "e2e.py")
XSUM_DECODER = str(ROOT / "configs" / "xsum_decoder.py")


def test_prefix_as_long_as_the_positions_fails_before_compile(tmp_path):
  with pytest.raises(BudgetError, match="^prefix length 512 >= the model's 512 positions"):
    train_and_evaluate(tiny_config(E2E, "prefix_len=512"), tmp_path / "run")
  assert not (tmp_path / "run").exists()
  proc = subprocess.run([sys.executable, str(ROOT / "tests" / "run_tiny.py"), E2E,
                         str(tmp_path / "cli"), "prefix.length=512"], cwd=ROOT,
                        env=with_xla_flags({}), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: prefix length 512 >= the model's 512 positions"), proc.stderr
  assert "zero-size" not in proc.stderr and "Traceback" not in proc.stderr


def test_maxima_that_cannot_fit_name_the_numbers(tmp_path):
  config = tiny_config(E2E, "prefix_len=100", **{"data.max_source_len": 400})
  with pytest.raises(BudgetError, match="prefix \\+ source \\+ separator \\+ target = 517 "
                     "exceeds the model's 512 positions"):
    train_and_evaluate(config, tmp_path / "run")


@pytest.mark.parametrize("overflow", ["truncate", "refuse"])
def test_one_over_long_example_is_cut_and_counted_or_refused(overflow, tmp_path, monkeypatch):
  shared_with_xsum(tmp_path, monkeypatch, long_doc=" ".join(["word"] * 60))
  config = tiny_config(XSUM_DECODER, "prefix_len=4", **{
      "train.num_steps": 1, "data.overflow": overflow, "data.num_eval_loss_examples": 0})
  if overflow == "refuse":
    with pytest.raises(BudgetError, match="^1 examples of train exceed data.max_source_len "
                       "\\(e.g. 30000000\\) and data.overflow='refuse'"):
      train_and_evaluate(config, tmp_path / "run")
    return
  summary = train_and_evaluate(config, tmp_path / "run")
  assert summary["examples_cut"] == {"source_truncated": 1}
