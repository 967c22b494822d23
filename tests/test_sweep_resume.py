"""The sweep launcher killed mid-cell: the rerun resumes that cell, runs the others in
parallel, writes the tables, and a third run skips every finished cell."""
import json
import os
import signal
import time

from prefix_jax.sweep.record import CELL_FILE
from sweep_runs import sweep as _sweep

# The killed run compiles without the session's compilation cache, so that its cell takes as
# long as on a fresh machine: the kill lands between its first checkpoint and the cell's end.
NO_CACHE = {"JAX_ENABLE_COMPILATION_CACHE": "false"}


def _saved_steps(workdir):
  """Finished checkpoints of a cell (step 1's may be gone already: 2 are kept)."""
  folder = workdir / "checkpoints"
  return [p for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []


def test_sweep_killed_mid_cell_resumes_and_writes_tables(tmp_path, shared_dir):
  root = tmp_path / "sweep"
  first = root / "prefix_len=2,seed=0"
  proc = _sweep(root, env=NO_CACHE, start_new_session=True)
  deadline = time.time() + 240
  while not _saved_steps(first):  # killed mid-cell, after its first saved checkpoint
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
    time.sleep(0.05)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not (first / "scores.json").exists()
  proc = _sweep(root, "--parallel", "2")
  out = proc.communicate(timeout=600)[0]
  assert proc.returncode == 0, out
  assert len([x for x in out.splitlines() if x.startswith("[")]) == 4, out
  assert "resumed from step" in (first / "sweep.log").read_text()
  assert json.loads((first / CELL_FILE).read_text())["attempts"] == 2
  rows = [json.loads(x) for x in (root / "results.jsonl").read_text().splitlines()]
  assert [r["status"] for r in rows] == ["finished"] * 4
  assert all(r["steps"] == 3 and "bleu" in r["scores"] and r["trainable_share"] > 0
             for r in rows)
  md = (root / "results.md").read_text().splitlines()
  assert len(md) == 4 and md[2].startswith("| 2 ") and md[3].startswith("| 4 ")
  assert all("±" in line for line in md[2:])
  assert (root / "results.png").stat().st_size > 1000 and (root / "results.tex").exists()
  start = time.time()
  proc = _sweep(root)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 0 and out.count("finished earlier, skipped") == 4, out
