"""A Slurm array job for a sweep: one task per cell, each an ordinary `prefix_jax.main` run
(single host, or multi-host through `jax.distributed` with `nodes` > 1)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

TEMPLATE = """#!/bin/bash
#SBATCH --job-name={job}
#SBATCH --array=0-{last}%{concurrent}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --time={time}
#SBATCH --output={root}/logs/%a.out
{extra}
# One sweep cell per array task; line N of cells.tsv is task N-1: CONFIG<TAB>WORKDIR.
# A cell whose workdir already holds scores.json is skipped; an interrupted one resumes.
set -euo pipefail
cd {cwd}
LINE=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {root}/cells.tsv)
CONFIG=$(cut -f1 <<<"$LINE"); WORKDIR=$(cut -f2 <<<"$LINE")
if [ -f "$WORKDIR/scores.json" ] && grep -q '"completed"' "$WORKDIR/summary.json"; then
  echo "finished earlier: $WORKDIR"; exit 0
fi
DIST=()
if [ "${{SLURM_JOB_NUM_NODES:-1}}" -gt 1 ]; then  # multi-host: one process per node
  HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
  DIST=(--config.distributed.num_processes="$SLURM_NTASKS"
        --config.distributed.coordinator_address="$HEAD:{port}")
fi
srun bash -c '{python} -m prefix_jax.main --config="$0" --workdir="$1" \\
  --config.distributed.process_id="$SLURM_PROCID" "${{@:2}}"' "$CONFIG" "$WORKDIR" "${{DIST[@]}}"
"""


def write_array_script(cells, root, *, nodes: int = 1, time: str = "24:00:00",
                       concurrent: int = 64, extra: str = "", port: int = 12345) -> Path:
  """Writes `root/cells.tsv` and `root/sweep.sbatch`; returns the script's path."""
  root = Path(root).absolute()
  (root / "logs").mkdir(parents=True, exist_ok=True)
  (root / "cells.tsv").write_text(
      "".join(f"{c.config_spec}\t{c.workdir(root)}\n" for c in cells))
  script = root / "sweep.sbatch"
  script.write_text(TEMPLATE.format(
      job=root.name, last=len(cells) - 1, concurrent=concurrent, nodes=nodes, time=time,
      root=root, cwd=Path.cwd(), python=shlex.quote(sys.executable), port=port,
      extra="\n".join(f"#SBATCH {line}" for line in extra.split(";") if line.strip())))
  return script
