"""`--one_program`: cells that differ only in prefix-side keys train as one program.

Cells are grouped by their other values; each group runs in a subprocess
(`python -m prefix_jax.sweep.group ROOT/_one_program/GROUP/members.json`) that trains the
members together (`train.multi_run.train_members`, checkpointing the group: re-running
resumes), exports one prefix per member into the member's own workdir, then decodes and
scores each member there like an ordinary run. A member's wall time is its group's divided
by the number of members.
"""
from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

from prefix_jax.evaluate import evaluate_workdir
from prefix_jax import cli
from prefix_jax.sweep.grid import (PREFIX_SIDE, Cell, cell_status, load_config,
                                   split_config)
from prefix_jax.sweep.record import outcome, record_wall
from prefix_jax.train.multi_run import train_members

GROUP_DIR = "_one_program"


def group_cells(cells) -> dict[str, list[Cell]]:
  """Group name (the non-prefix-side values, or 'all') -> its cells."""
  groups: dict[str, list[Cell]] = {}
  for cell in cells:
    rest = [(k, v) for k, v in cell.values if k not in PREFIX_SIDE]
    name = Cell(cell.config_file, "", tuple(rest)).name if rest else "all"
    groups.setdefault(name, []).append(cell)
  return groups


def write_members(cells, group_dir: Path, root: Path) -> Path:
  group_dir.mkdir(parents=True, exist_ok=True)
  path = group_dir / "members.json"
  path.write_text(json.dumps({"members": [
      {"config": c.config_spec, "workdir": str(c.workdir(root))} for c in cells]}, indent=1))
  return path


def run_groups(cells, root: Path, *, commit: str, parallel: int, progress) -> list[str]:
  """Runs each group in a subprocess; returns the names of the cells that failed."""
  root = Path(root)

  def one(item):
    name, members = item
    group_dir = root / GROUP_DIR / name
    spec = write_members(members, group_dir, root)
    for cell in members:
      record_wall(cell.workdir(root), 0.0, commit, attempt=True)
    start = time.time()
    with open(group_dir / "sweep.log", "a") as log:
      rc = subprocess.run([sys.executable, "-m", "prefix_jax.sweep.group", str(spec)],
                          stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.time() - start
    failed = []
    for cell in members:
      record_wall(cell.workdir(root), seconds / len(members), commit)
      text = outcome(cell.workdir(root), rc, seconds / len(members))
      if text.startswith("FAILED"):
        text += f" (group log: {group_dir}/sweep.log)"
        failed.append(cell.name)
      progress.line(cell.name, f"{text} [one program of {len(members)}]")
    return failed

  with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
    return [n for names in pool.map(one, group_cells(cells).items()) for n in names]


def run_group_file(path) -> None:
  """Trains the members of a members.json (`{"members": [{"config": "FILE.py:ARGS",
  "workdir": DIR}, ...]}`; members may be different tasks) as one program, then scores each
  member in its workdir."""
  members = json.loads(Path(path).read_text())["members"]
  configs = [load_config(*split_config(m["config"])) for m in members]
  workdirs = [Path(m["workdir"]) for m in members]
  if not all(cell_status(w) == "finished" for w in workdirs):
    train_members(configs, workdirs, Path(path).parent)
  for config, wd in zip(configs, workdirs):
    if cell_status(wd) != "finished":
      evaluate_workdir(config, wd)


def main(argv) -> int:
  if len(argv) != 2:
    print("usage: python -m prefix_jax.sweep.group MEMBERS.json", file=sys.stderr)
    return 2
  with cli.one_line_errors():
    run_group_file(argv[1])
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
