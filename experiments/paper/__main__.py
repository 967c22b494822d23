"""`python -m experiments.paper TABLE|all --scale tiny|mini|paper [--root DIR] [--out DIR]
[--parallel N] [--launcher local|inline|slurm] [--render_only]`.

Runs the table's missing cells through the sweep launcher (finished cells are skipped, an
interrupted one resumes), then writes OUT/TABLE.md, .tex, .json (and .png for figures) with
our numbers beside the paper's, the raw per-cell rows (TABLE.rows.json) and how they were made
(TABLE.run.json: command, commits, machine). A cell already finished in OUT's raw rows is
kept and not run again, also where its workdir is gone (a fresh clone of committed results). Cells whose method, task option or backbone does not exist in
this code are listed as missing (n/a) and not run. Exit 1 if a cell that could run failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.paper.cells import build_cells, missing_reason
from experiments.paper.render import render
from experiments.paper.rows import load_rows, load_run, raw_rows, save_rows, save_run
from experiments.paper.specs import SCALES, SPECS
from prefix_jax import runtime
from prefix_jax.sweep.launch import LAUNCHERS, run_cells


def make_table(name: str, scale: str, root: Path, *, out: Path | None = None,
               launcher: str | None = None, parallel: int = 1, render_only: bool = False,
               command: list[str] | None = None) -> tuple[dict, list[str]]:
  """Runs (unless render_only) and renders one spec into `out` (default: root) with its raw
  rows (NAME.rows.json) and how it was made (NAME.run.json); returns (files, failed cells)."""
  spec, out = SPECS[name], Path(out or root)
  cells = build_cells(spec, scale, root / "cells")
  missing, runnable = {}, []
  for tc in cells:
    why = missing_reason(tc)
    if why:
      missing.setdefault(tc.row.label, why)
    else:
      runnable.append(tc)
  saved = saved_rows(out, name)
  failed = []
  if not render_only:
    by_root: dict[Path, list] = {}
    for tc in runnable:
      if tc.cell.config_spec not in saved:
        by_root.setdefault(tc.root, []).append(tc.cell)
    for group_root, group in by_root.items():
      unique = list(dict.fromkeys(group))
      failed += run_cells(unique, group_root, launcher=launcher or SCALES[scale].launcher,
                          parallel=parallel)
  rows = [row if row["status"] == "finished" else saved.get(row["config"], row)
          for row in raw_rows(runnable)]
  files = render(spec, rows, missing, x_values(spec, scale), out)
  files["rows"] = save_rows(out, name, rows)
  files["run"] = save_run(out, name, scale, command or [name, "--scale", scale], rows)
  return files, failed


def saved_rows(out: Path, name: str) -> dict[str, dict]:
  """config -> the finished rows already saved in `out` (kept when their workdirs are gone,
  e.g. in a fresh clone of committed results; their cells are not run again)."""
  try:
    return {r["config"]: r for r in load_rows(out, name) if r["status"] == "finished"}
  except FileNotFoundError:
    return {}


def x_values(spec, scale: str) -> tuple:
  return spec.x_values[scale] if spec.x_key else (None,)


def rerender(name: str, results: Path, out: Path) -> dict:
  """Renders NAME again into `out` from the raw rows saved in `results` alone."""
  saved = json.loads((Path(results) / f"{name}.json").read_text())
  spec = SPECS[name]
  xs = x_values(spec, load_run(results, name)["scale"])
  return render(spec, load_rows(results, name), saved["missing"], xs, Path(out))


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m experiments.paper", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("table", choices=sorted(SPECS) + ["all"])
  p.add_argument("--scale", choices=sorted(SCALES), default="tiny")
  p.add_argument("--root", default=None, help="the cells' workdirs (default: runs/paper/SCALE)")
  p.add_argument("--out", default=None,
                 help="rendered tables, raw rows, command and machine (default: results/SCALE "
                      "for mini and paper, else the root)")
  p.add_argument("--launcher", choices=LAUNCHERS[:2], default=None,
                 help="default: the scale's (tiny: inline, else local)")
  p.add_argument("--parallel", type=int, default=1)
  p.add_argument("--render_only", action="store_true", help="run nothing; render what exists")
  args = p.parse_args(argv)
  root = Path(args.root or f"runs/paper/{args.scale}")
  out = Path(args.out or (f"results/{args.scale}" if args.scale != "tiny" else root))
  names = sorted(SPECS) if args.table == "all" else [args.table]
  failed = []
  for name in names:
    command = [name, "--scale", args.scale] + [
        f"--{k}={v}" for k, v in (("root", args.root), ("out", args.out),
                                  ("launcher", args.launcher)) if v]
    command += [f"--parallel={args.parallel}"] if args.parallel != 1 else []
    files, bad = make_table(name, args.scale, root, out=out, launcher=args.launcher,
                            parallel=args.parallel, render_only=args.render_only,
                            command=command)
    failed += bad
    print(f"{name}: " + ", ".join(str(f) for f in files.values()), flush=True)
  if failed:
    print(f"{len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  runtime.collect_less()  # the imports are done
  sys.exit(main())
