"""`python -m prefix_jax.sweep --config=FILE[:ARGS] --grid KEY=V1,V2 [--grid ...] --root DIR
[--parallel N] [--launcher local|inline|slurm] [--one_program] [--collect]` (docs/sweeps.md).

Exit status: 0 when every cell finished, 1 when some failed (re-run to resume), 2 on bad options.
"""
from __future__ import annotations

import argparse
import sys

from prefix_jax import runtime
from prefix_jax.sweep.grid import SweepError, parse_grid
from prefix_jax.sweep.launch import LAUNCHERS, run_sweep


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m prefix_jax.sweep", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", required=True, help="FILE.py[:key=value,...] shared by every cell")
  p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                 help="a swept key and its values (repeatable; cells are the product)")
  p.add_argument("--root", required=True, help="folder holding one workdir per cell")
  p.add_argument("--parallel", type=int, default=1, help="cells run at once (local launcher)")
  p.add_argument("--launcher", default="local", choices=LAUNCHERS)
  p.add_argument("--one_program", action="store_true",
                 help="train cells differing only in prefix-side keys as one program")
  p.add_argument("--collect", action="store_true",
                 help="run nothing; write results and tables from the workdirs as they are")
  p.add_argument("--slurm_nodes", type=int, default=1, help="nodes per array task")
  p.add_argument("--slurm_time", default="24:00:00", help="time limit per array task")
  p.add_argument("--slurm_extra", default="",
                 help="extra #SBATCH lines separated by ';', e.g. '--gres=gpu:1;--partition=a'")
  return p


def main(argv=None) -> int:
  args = parser().parse_args(argv)
  try:
    out = run_sweep(args.config, parse_grid(args.grid), args.root, launcher=args.launcher,
                    parallel=args.parallel, one_program=args.one_program,
                    collect_only=args.collect,
                    slurm_options=dict(nodes=args.slurm_nodes, time=args.slurm_time,
                                       extra=args.slurm_extra))
  except SweepError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 1 if out["failed"] else 0


if __name__ == "__main__":
  runtime.collect_less()  # the imports are done
  sys.exit(main())
