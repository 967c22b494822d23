"""The sweep launcher: cells, results tables and plot, slurm script, one-program sweeps (resume
after a kill: test_sweep_resume.py)."""
import json
import subprocess
import sys

import pytest

from prefix_jax.sweep import grid as grid_lib
from prefix_jax.sweep import results as results_lib
from prefix_jax.sweep.__main__ import main as sweep_main
from prefix_jax.sweep.record import CELL_FILE
from prefix_jax.sweep.slurm import write_array_script
from conftest import with_xla_flags
from sweep_runs import ROOT, TINY


def test_cells_product_names_and_args():
  cells = grid_lib.make_cells("configs/e2e.py:model=x", grid_lib.parse_grid(
      ["prefix_len=1,5", "seed=0,1,2"]))
  assert [c.name for c in cells[:4]] == ["prefix_len=1,seed=0", "prefix_len=1,seed=1",
                                         "prefix_len=1,seed=2", "prefix_len=5,seed=0"]
  assert cells[3].config_spec == "configs/e2e.py:model=x,prefix_len=5,seed=0"
  assert grid_lib.Cell("c.py", "", (("init", "a/b c"),)).name == "init=a_b_c"


@pytest.mark.parametrize("options, message", [
    (["prefix_len"], "is not KEY=V1,V2"), (["seed=1,1"], "repeats a value"),
    (["seed=1", "seed=2"], "given twice")])
def test_bad_grid_exits_2_with_one_line(options, message, tmp_path, capsys):
  argv = ["--config", "configs/e2e.py", "--root", str(tmp_path / "r")]
  for o in options:
    argv += ["--grid", o]
  assert sweep_main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1
  assert not (tmp_path / "r").exists()


def test_swept_key_also_in_config_is_rejected(capsys, tmp_path):
  argv = ["--config", "configs/e2e.py:seed=1", "--grid", "seed=0,1", "--root", str(tmp_path)]
  assert sweep_main(argv) == 2
  assert "set in --config and swept" in capsys.readouterr().err


def _fake_cell(root, cell, bleu, share=0.01):
  wd = cell.workdir(root)
  wd.mkdir(parents=True)
  (wd / "summary.json").write_text(json.dumps({"status": "completed", "step": 7,
                                               "trainable_params": 10, "backbone_params": 1000}))
  (wd / "scores.json").write_text(json.dumps({"bleu": bleu, "nist": 2 * bleu}))
  (wd / CELL_FILE).write_text(json.dumps({"wall_s": 1.5, "commit": "abc"}))


def test_table_aggregates_seeds_as_mean_and_std(tmp_path):
  cells = grid_lib.make_cells("configs/e2e.py", grid_lib.parse_grid(
      ["prefix_len=1,5", "seed=0,1"]))
  for cell, bleu in zip(cells[:3], (10.0, 14.0, 20.0)):  # the last cell never ran
    _fake_cell(tmp_path, cell, bleu)
  files = results_lib.write_all(cells, tmp_path, ["prefix_len", "seed"])
  rows = [json.loads(x) for x in files["results"].read_text().splitlines()]
  assert [r["status"] for r in rows] == ["finished"] * 3 + ["new"]
  assert rows[0]["trainable_share"] == 0.01 and rows[0]["steps"] == 7
  assert rows[0]["wall_s"] == 1.5 and rows[0]["commit"] == "abc"
  md = files["markdown"].read_text().splitlines()
  assert [h.strip() for h in md[0].split("|")[1:-1]] == ["prefix_len", "seeds", "bleu", "nist"]
  # mean 12, sample std of (10, 14) = 2.83
  assert "| 1            | 2       | 12.00 ± 2.83 | 24.00 ± 5.66 |" in md
  assert "| 5            | 1       | 20.00        | 40.00        |" in md
  tex = files["latex"].read_text()
  assert "prefix\\_len" in tex and "12.00 $\\pm$ 2.83" in tex
  assert files["plot"].stat().st_size > 1000
  assert "cell,prefix_len,seed,status,bleu,nist" in files["csv"].read_text()


def test_slurm_script_has_one_task_per_cell(tmp_path):
  cells = grid_lib.make_cells(TINY, grid_lib.parse_grid(["prefix_len=2,4", "seed=0,1,2"]))
  script = write_array_script(cells, tmp_path, nodes=2, extra="--gres=gpu:1")
  text = script.read_text()
  assert "#SBATCH --array=0-5%" in text and "#SBATCH --nodes=2" in text
  assert "#SBATCH --gres=gpu:1" in text
  lines = (tmp_path / "cells.tsv").read_text().splitlines()
  assert len(lines) == 6 and lines[5].endswith("prefix_len=4,seed=2")
  assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_one_program_sweep_writes_ordinary_member_workdirs(tmp_path, shared_dir):
  root = tmp_path / "one"
  cmd = [sys.executable, "-m", "prefix_jax.sweep", f"--config={TINY}", "--grid",
         "prefix_len=2,4", "--root", str(root), "--one_program"]
  out = subprocess.run(cmd, cwd=ROOT, env=with_xla_flags({}), capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  assert out.stdout.count("[one program of 2]") == 2, out.stdout
  for length in (2, 4):
    wd = root / f"prefix_len={length}"
    summary = json.loads((wd / "summary.json").read_text())
    assert summary["one_program"].endswith("_one_program/all") and summary["step"] == 3
    assert (wd / "scores.json").exists() and (wd / "prefix.safetensors").exists()
  from prefix_jax.train.export import load_prefix
  assert load_prefix(root / "prefix_len=4" / "prefix.safetensors")[0].length == 4
  rows = [json.loads(x) for x in (root / "results.jsonl").read_text().splitlines()]
  assert [r["status"] for r in rows] == ["finished"] * 2 and rows[0]["wall_s"] > 0


def test_root_of_another_config_is_refused(tmp_path, capsys):
  (tmp_path / "sweep.json").write_text(json.dumps({"config": "configs/e2e.py:lr=1", "grid": []}))
  argv = ["--config", "configs/e2e.py:lr=2", "--grid", "seed=0", "--root", str(tmp_path)]
  assert sweep_main(argv) == 2
  assert "holds a sweep of --config=configs/e2e.py:lr=1" in capsys.readouterr().err
  assert json.loads((tmp_path / "sweep.json").read_text())["config"] == "configs/e2e.py:lr=1"


def test_inline_cell_that_raises_is_reported_and_logged(tmp_path, capsys):
  # A config file whose get_config raises a non-user error: the cell fails, the sweep goes on.
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(arg=None):\n  raise RuntimeError('boom')\n")
  argv = ["--config", str(bad), "--grid", "seed=0,1", "--root", str(tmp_path / "r"),
          "--launcher", "inline"]
  assert sweep_main(argv) == 1
  out = capsys.readouterr().out
  assert out.count("FAILED (exit 1)") == 2
  assert "RuntimeError: boom" in (tmp_path / "r" / "seed=0" / "sweep.log").read_text()


def test_multitask_root_of_other_members_is_refused(tmp_path, capsys):
  from prefix_jax.sweep.multitask import main as multitask_main, write_members
  path = write_members(["configs/e2e.py:model=a", "configs/webnlg.py:model=a"], tmp_path)
  members = json.loads(path.read_text())["members"]
  assert [m["workdir"] for m in members] == [str(tmp_path / "0-e2e"), str(tmp_path / "1-webnlg")]
  assert multitask_main(["--member", "configs/dart.py", "--root", str(tmp_path)]) == 2
  assert "holds a multi-task run of other members" in capsys.readouterr().err
  assert json.loads(path.read_text())["members"] == members
