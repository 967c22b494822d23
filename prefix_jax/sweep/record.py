"""What the launcher records and prints per cell: wall time, commit, a progress line."""
from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from prefix_jax.sweep.grid import cell_status

CELL_FILE = "sweep_cell.json"  # the launcher's record in a cell's workdir: wall time, commit


def record_wall(workdir: Path, seconds: float, commit: str, attempt: bool = False) -> None:
  """Adds `seconds` to the cell's wall time (summed over resumes); `attempt`: counts a start
  (recorded before the run, so that a killed attempt counts too) and the machine's load
  average then (wall times measured beside other work read higher)."""
  path = Path(workdir) / CELL_FILE
  old = json.loads(path.read_text()) if path.exists() else {}
  Path(workdir).mkdir(parents=True, exist_ok=True)
  loads = old.get("load_1m_at_starts", []) + ([round(os.getloadavg()[0], 2)] if attempt else [])
  path.write_text(json.dumps({"wall_s": old.get("wall_s", 0.0) + seconds, "commit": commit,
                              "attempts": old.get("attempts", 0) + int(attempt),
                              "load_1m_at_starts": loads}, indent=1))


class Progress:
  """One line per cell: `[i/N] NAME: status (time, scores)`."""

  def __init__(self, total: int, out=None):
    self.total, self.done, self.out, self.lock = total, 0, out, threading.Lock()

  def line(self, name: str, text: str) -> None:
    with self.lock:
      self.done += 1
      print(f"[{self.done}/{self.total}] {name}: {text}", file=self.out or sys.stdout,
            flush=True)


def outcome(workdir: Path, rc: int, seconds: float) -> str:
  status = cell_status(workdir)
  if status == "finished":
    scores = json.loads((workdir / "scores.json").read_text())
    shown = ", ".join(f"{k} {v:.4g}" for k, v in list(scores.items())[:3])
    return f"finished in {seconds:.1f}s ({shown})"
  return f"FAILED (exit {rc}) after {seconds:.1f}s; log: {workdir}/sweep.log"


