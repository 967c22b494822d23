"""`python -m experiments.paper TABLE|all --scale tiny|mini|paper [--root DIR] [--parallel N]
[--launcher local|inline|slurm] [--render_only]`.

Runs the table's missing cells through the sweep launcher (finished cells are skipped, an
interrupted one resumes), then writes ROOT/TABLE.md, .tex, .json (and .png for figures) with
our numbers beside the paper's. Cells whose method, task option or backbone does not exist in
this code are listed as missing (n/a) and not run. Exit 1 if a cell that could run failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.paper.cells import build_cells, missing_reason
from experiments.paper.render import render
from experiments.paper.specs import SCALES, SPECS
from prefix_jax.sweep.launch import LAUNCHERS, run_cells


def make_table(name: str, scale: str, root: Path, *, launcher: str | None = None,
               parallel: int = 1, render_only: bool = False) -> tuple[dict, list[str]]:
  """Runs (unless render_only) and renders one spec; returns (files, failed cell names)."""
  spec = SPECS[name]
  cells = build_cells(spec, scale, root / "cells")
  missing, runnable = {}, []
  for tc in cells:
    why = missing_reason(tc)
    if why:
      missing.setdefault(tc.row.label, why)
    else:
      runnable.append(tc)
  failed = []
  if not render_only:
    by_root: dict[Path, list] = {}
    for tc in runnable:
      by_root.setdefault(tc.root, []).append(tc.cell)
    for group_root, group in by_root.items():
      unique = list(dict.fromkeys(group))
      failed += run_cells(unique, group_root, launcher=launcher or SCALES[scale].launcher,
                          parallel=parallel)
  xs = spec.x_values[scale] if spec.x_key else (None,)
  return render(spec, cells, missing, xs, root), failed


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m experiments.paper", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("table", choices=sorted(SPECS) + ["all"])
  p.add_argument("--scale", choices=sorted(SCALES), default="tiny")
  p.add_argument("--root", default=None, help="default: runs/paper/SCALE")
  p.add_argument("--launcher", choices=LAUNCHERS[:2], default=None,
                 help="default: the scale's (tiny: inline, else local)")
  p.add_argument("--parallel", type=int, default=1)
  p.add_argument("--render_only", action="store_true", help="run nothing; render what exists")
  args = p.parse_args(argv)
  root = Path(args.root or f"runs/paper/{args.scale}")
  names = sorted(SPECS) if args.table == "all" else [args.table]
  failed = []
  for name in names:
    files, bad = make_table(name, args.scale, root, launcher=args.launcher,
                            parallel=args.parallel, render_only=args.render_only)
    failed += bad
    print(f"{name}: " + ", ".join(str(f) for f in files.values()), flush=True)
  if failed:
    print(f"{len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
