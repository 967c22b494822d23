"""Running a sweep's cells: each an ordinary run (`prefix_jax.main`) in its own workdir.

Launchers: 'local' (a subprocess per cell, `--parallel N` at once), 'inline' (in this process,
one after another: saves the start-up of a process per cell, for tiny cells), 'slurm' (writes
an array job script, one cell per task). With `one_program`, cells that differ only in
prefix-side keys train together (`prefix_jax.sweep.group`, `train.multi`).
"""
from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

from prefix_jax.main import run as run_main
from prefix_jax.sweep import grid as grid_lib
from prefix_jax.sweep.group import run_groups
from prefix_jax.provenance import git_commit
from prefix_jax.sweep.record import Progress, outcome, record_wall
from prefix_jax.sweep import results as results_lib
from prefix_jax.sweep.slurm import write_array_script

LAUNCHERS = ("local", "inline", "slurm")


def main_command(cell: grid_lib.Cell, workdir: Path, evaluate: bool = True) -> list[str]:
  cmd = [sys.executable, "-m", "prefix_jax.main", f"--config={cell.config_spec}",
         f"--workdir={workdir}"]
  return cmd + ([] if evaluate else ["--noevaluate"])


def run_subprocess(cmd: list[str], log: Path) -> int:
  log.parent.mkdir(parents=True, exist_ok=True)
  with open(log, "a") as f:
    f.write(f"$ {' '.join(cmd)}\n")
    f.flush()
    return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode


def run_inline(cell: grid_lib.Cell, workdir: Path) -> int:
  """The cell in this process through `prefix_jax.main.run` (its exit codes kept). Any other
  failure of the cell is written to its sweep.log and ends only this cell (exit 1)."""
  try:
    run_main(grid_lib.load_config(cell.config_file, cell.arg), workdir)
  except SystemExit as e:
    return int(e.code or 0)
  except Exception:  # noqa: BLE001 -- one broken cell must not stop the other cells
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with open(Path(workdir) / "sweep.log", "a") as f:
      f.write(traceback.format_exc())
    return 1
  return 0


def _run_cell(cell, root: Path, launcher: str, commit: str) -> tuple[int, float]:
  workdir = cell.workdir(root)
  record_wall(workdir, 0.0, commit, attempt=True)
  start = time.time()
  if launcher == "inline":
    rc = run_inline(cell, workdir)
  else:
    rc = run_subprocess(main_command(cell, workdir), workdir / "sweep.log")
  seconds = time.time() - start
  record_wall(workdir, seconds, commit)
  return rc, seconds


def run_cells(cells, root: Path, *, launcher: str = "local", parallel: int = 1,
              one_program: bool = False, progress: Progress | None = None) -> list[str]:
  """Runs every unfinished cell; returns the names of cells that failed."""
  commit = git_commit()
  progress = progress or Progress(len(cells))
  todo = []
  for cell in cells:
    if grid_lib.cell_status(cell.workdir(root)) == "finished":
      progress.line(cell.name, "finished earlier, skipped")
    else:
      todo.append(cell)
  if one_program and todo:
    return run_groups(todo, root, commit=commit, parallel=parallel, progress=progress)

  def one(cell):
    rc, seconds = _run_cell(cell, root, launcher, commit)
    text = outcome(cell.workdir(root), rc, seconds)
    progress.line(cell.name, text)
    return cell.name, text.startswith("FAILED")

  if launcher == "inline":  # in this (main) thread, one after another: the trainer sets signals
    return [name for name, bad in map(one, todo) if bad]
  with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
    return [name for name, bad in pool.map(one, todo) if bad]


def check_root(root: Path, config: str) -> None:
  """A root holds one sweep's --config (its grid may grow): cells of the same name must mean
  the same run."""
  record = root / "sweep.json"
  if record.exists():
    old = json.loads(record.read_text()).get("config")
    if old != config:
      raise grid_lib.SweepError(f"--root {root} holds a sweep of --config={old}, not {config}; "
                                "use a new --root")


def run_sweep(config: str, grid: list[tuple[str, list[str]]], root, *, launcher: str = "local",
              parallel: int = 1, one_program: bool = False, collect_only: bool = False,
              slurm_options: dict | None = None) -> dict:
  """Runs (or, for 'slurm', writes the job for) every cell, then writes the results and tables.
  Returns {'cells': N, 'failed': [names], 'files': {...}}."""
  if launcher not in LAUNCHERS:
    raise grid_lib.SweepError(f"--launcher {launcher!r} unknown (choose from {LAUNCHERS})")
  if parallel < 1:
    raise grid_lib.SweepError(f"--parallel must be >= 1, got {parallel}")
  root = Path(root)
  cells = grid_lib.make_cells(config, grid)
  check_root(root, config)
  root.mkdir(parents=True, exist_ok=True)
  (root / "sweep.json").write_text(json.dumps({"config": config, "grid": grid}, indent=1))
  failed = []
  if launcher == "slurm" and not collect_only:
    script = write_array_script(cells, root, **(slurm_options or {}))
    print(f"wrote {script} ({len(cells)} array tasks): submit it with `sbatch {script}`, then "
          "re-run this command with --collect to write the tables")
    return {"cells": len(cells), "failed": [], "files": {"slurm": script}}
  if not collect_only:
    failed = run_cells(cells, root, launcher=launcher, parallel=parallel,
                       one_program=one_program)
  files = results_lib.write_all(cells, root, [k for k, _ in grid])
  for kind, path in files.items():
    print(f"wrote {kind}: {path}")
  if failed:
    print(f"{len(failed)} cell(s) failed: {', '.join(failed)} (re-run the command to resume)",
          file=sys.stderr)
  return {"cells": len(cells), "failed": failed, "files": files}


