"""Multi-task training as one program: one prefix per task, mixed batches, one backbone.

`python -m prefix_jax.sweep.multitask --member configs/e2e.py:model=smollm2-135m,steps=500
--member configs/webnlg.py:model=smollm2-135m,steps=500 --root runs/mt`
trains the members together (`train.multi_run.train_members`; each keeps its own data,
optimizer and loss normalization), checkpointing in ROOT/_one_program (re-running resumes),
then scores each member in its own workdir ROOT/<i>-<task file stem> like an ordinary run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prefix_jax.sweep import group
from prefix_jax.sweep.grid import SweepError, split_config


def write_members(members: list[str], root: Path) -> Path:
  entries = []
  for i, spec in enumerate(members):
    file, _ = split_config(spec)
    entries.append({"config": spec, "workdir": str(root / f"{i}-{Path(file).stem}")})
  out = root / group.GROUP_DIR
  out.mkdir(parents=True, exist_ok=True)
  path = out / "members.json"
  if path.exists() and json.loads(path.read_text())["members"] != entries:
    raise SweepError(f"{root} holds a multi-task run of other members ({path}); use a new --root")
  path.write_text(json.dumps({"members": entries}, indent=1))
  return path


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m prefix_jax.sweep.multitask", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--member", action="append", required=True, help="FILE.py[:ARGS] (repeat)")
  p.add_argument("--root", required=True)
  args = p.parse_args(argv)
  try:
    path = write_members(args.member, Path(args.root))
  except SweepError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return group.main(["multitask", str(path)])


if __name__ == "__main__":
  sys.exit(main())
