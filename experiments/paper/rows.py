"""A table's raw rows: one per cell (its row, x, seed, task, config, scores, trainable share,
steps, wall time, commit), read from the cells' workdirs and saved beside the rendered table,
so that the table can be rendered again from them alone (`render.render`)."""
from __future__ import annotations

import json
from pathlib import Path

from experiments.paper.cells import TableCell
from prefix_jax import provenance
from prefix_jax.sweep.results import cell_row


def raw_rows(cells: list[TableCell]) -> list[dict]:
  return [{**cell_row(tc.cell, tc.root), "row": tc.row.label, "x": tc.x, "seed": tc.seed,
           "task": tc.column.task, "column_args": tc.column.args,
           "config": tc.cell.config_spec} for tc in cells]


def rows_file(out_dir: Path, name: str) -> Path:
  return Path(out_dir) / f"{name}.rows.json"


def save_rows(out_dir: Path, name: str, rows: list[dict]) -> Path:
  path = rows_file(out_dir, name)
  path.write_text(json.dumps(rows, indent=1) + "\n")
  return path


def load_rows(out_dir: Path, name: str) -> list[dict]:
  return json.loads(rows_file(out_dir, name).read_text())


def load_run(out_dir: Path, name: str) -> dict:
  return json.loads((Path(out_dir) / f"{name}.run.json").read_text())


def save_run(out_dir: Path, name: str, scale: str, command: list[str], rows: list[dict]) -> Path:
  """NAME.run.json: the command that made the table, the commits its cells ran on, the commit
  that rendered it, the machine, and the cells' total wall time."""
  finished = [r for r in rows if r["status"] == "finished"]
  run = {"command": " ".join(["python", "-m", "experiments.paper", *command]), "scale": scale,
         "cell_commits": sorted({r["commit"] for r in rows if r.get("commit")}),
         "rendered_at": provenance.git_commit(),
         "machine": provenance.machine(),
         "cells": len(rows), "finished": len(finished),
         "wall_s_total": round(sum(r["wall_s"] or 0.0 for r in rows), 1)}
  path = Path(out_dir) / f"{name}.run.json"
  path.write_text(json.dumps(run, indent=1) + "\n")
  return path
