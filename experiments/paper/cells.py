"""The cells of a table or figure at a scale: each an ordinary run (a sweep cell) whose workdir
is `ROOT/<task>[+column args]@<model>/<row values>`, so tables sharing a cell share its run."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from experiments.paper.specs import SCALES, Column, Row, Scale, Spec
from prefix_jax.methods import MethodError, check_name
from prefix_jax.sweep.grid import Cell, SweepError, load_config
from prefix_jax.train.backbone import TINY


@dataclasses.dataclass(frozen=True)
class TableCell:
  row: Row
  column: Column         # the first column of the cell's task group
  x: object              # the figure's x value (None for tables)
  seed: int | None
  cell: Cell
  root: Path             # the group folder; the workdir is cell.workdir(root)

  @property
  def workdir(self) -> Path:
    return self.cell.workdir(self.root)


def _pairs(args: str) -> list[tuple[str, str]]:
  return [tuple(item.split("=", 1)) for item in args.split(",") if item]


def model_for(spec: Spec, scale: Scale, task: str) -> str:
  return (spec.models or {}).get(scale.name) or scale.models.get(task, "")


def config_file(scale: Scale, task: str) -> str:
  return scale.config_files.get(task, f"configs/{task}.py")


def column_groups(spec: Spec) -> dict[tuple[str, str], list[Column]]:
  """(task, column args) -> its columns: one run serves every metric of a group."""
  groups: dict[tuple[str, str], list[Column]] = {}
  for col in spec.columns:
    groups.setdefault((col.task, col.args), []).append(col)
  return groups


def row_values(row: Row, scale: Scale) -> list[tuple[str, str]]:
  """The row's own arguments, then the scale's arguments for its method that it does not set."""
  values = _pairs(row.args)
  method = dict(values).get("method", "")
  own = {k for k, _ in values}
  return values + [(k, v) for k, v in _pairs(scale.method_args.get(method, "")) if k not in own]


def build_cells(spec: Spec, scale_name: str, root) -> list[TableCell]:
  scale = SCALES[scale_name]
  xs = spec.x_values[scale_name] if spec.x_key else (None,)
  seeds = scale.seeds if spec.seeded else (None,)
  out = []
  for (task, col_args), cols in column_groups(spec).items():
    model = model_for(spec, scale, task)
    base = ",".join(a for a in (scale.args, scale.task_args.get(task, ""),
                                f"model={model}" if model else "", col_args) if a)
    tag = re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{task}{'+' + col_args if col_args else ''}"
                 f"@{model or 'default'}")
    for row in spec.rows:
      for x in xs:
        for seed in seeds:
          values = row_values(row, scale)
          values += [("n", str(scale.lowdata))] if spec.lowdata else []
          values += [(spec.x_key, str(x))] if spec.x_key else []
          values += [("seed", str(seed))] if seed is not None else []
          cell = Cell(config_file(scale, task), base, tuple(values))
          out.append(TableCell(row, cols[0], x, seed, cell, Path(root) / tag))
  return out


def missing_reason(tc: TableCell) -> str | None:
  """Why this cell cannot run on this code (unknown method, key, task or tiny model), or None."""
  if not Path(tc.cell.config_file).exists():
    return f"config {tc.cell.config_file} missing"
  try:
    config = load_config(tc.cell.config_file, tc.cell.arg)
  except SweepError as e:
    return str(e).split(": ", 1)[-1]
  if config.model.startswith("tiny-") and config.model not in TINY:
    return f"backbone {config.model} missing (tiny backbones: {sorted(TINY)})"
  try:
    check_name(config.method)
  except MethodError as e:
    return str(e)
  return None
