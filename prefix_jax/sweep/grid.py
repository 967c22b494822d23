"""Grid cells: the product of `--grid key=v1,v2,...` options, each with a workdir name."""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

from prefix_jax.errors import UserError

# Keys that change only the trainable prefix (or its optimizer / its data order): cells that
# differ only in these can train as one program (`train.multi`).
PREFIX_SIDE = frozenset({
    "prefix_len", "prefix.length", "init", "prefix.init", "prefix.init_std", "prefix.init_text",
    "reparam", "prefix.reparam", "prefix.mlp_hidden", "lr", "optim.learning_rate",
    "optim.grad_clip", "optim.warmup_steps", "optim.weight_decay", "n",
    "data.num_train_examples", "data.subset_seed"})
SEED_KEYS = ("seed",)


class SweepError(UserError, ValueError):
  """A bad sweep option (message names it)."""


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run of the grid: `values` (key -> value text, in grid order) on top of `base`."""
  config_file: str
  base: str
  values: tuple[tuple[str, str], ...]

  @property
  def name(self) -> str:
    """The workdir name, e.g. `prefix_len=5,seed=0`; characters unsafe in paths become '_'."""
    if not self.values:
      return "default"
    return ",".join(f"{k}={re.sub(r'[^A-Za-z0-9._+-]', '_', v)}" for k, v in self.values)

  @property
  def arg(self) -> str:
    """The `get_config` argument: the base argument, then this cell's values."""
    return ",".join(x for x in [self.base] + [f"{k}={v}" for k, v in self.values] if x)

  @property
  def config_spec(self) -> str:
    return f"{self.config_file}:{self.arg}" if self.arg else self.config_file

  def workdir(self, root) -> Path:
    return Path(root) / self.name


def parse_grid(options: list[str]) -> list[tuple[str, list[str]]]:
  """['prefix_len=1,5', 'seed=0,1'] -> [('prefix_len', ['1', '5']), ('seed', ['0', '1'])]."""
  grid, seen = [], set()
  for opt in options:
    key, sep, values = opt.partition("=")
    key = key.strip()
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key or not vals:
      raise SweepError(f"--grid {opt!r} is not KEY=V1,V2,...")
    if key in seen:
      raise SweepError(f"--grid key {key!r} given twice")
    if len(set(vals)) != len(vals):
      raise SweepError(f"--grid {key} repeats a value: {vals}")
    seen.add(key)
    grid.append((key, vals))
  return grid


def split_config(spec: str) -> tuple[str, str]:
  """'configs/e2e.py:model=x,seed=1' -> ('configs/e2e.py', 'model=x,seed=1')."""
  file, _, arg = spec.partition(":")
  if not file.endswith(".py"):
    raise SweepError(f"--config {spec!r} is not FILE.py[:ARGS]")
  return file, arg


def make_cells(config: str, grid: list[tuple[str, list[str]]]) -> list[Cell]:
  """Every combination of the grid's values (the first key varies slowest)."""
  file, base = split_config(config)
  base_keys = {item.split("=", 1)[0] for item in base.split(",") if item}
  clash = base_keys & {k for k, _ in grid}
  if clash:
    raise SweepError(f"key(s) {sorted(clash)} set in --config and swept by --grid")
  keys = [k for k, _ in grid]
  return [Cell(file, base, tuple(zip(keys, combo)))
          for combo in itertools.product(*(vals for _, vals in grid))]


def cell_status(workdir: Path) -> str:
  """'finished' (scores.json and a completed summary.json), 'started' or 'new'."""
  workdir = Path(workdir)
  summary = workdir / "summary.json"
  if (workdir / "scores.json").exists() and summary.exists():
    try:
      if json.loads(summary.read_text()).get("status") == "completed":
        return "finished"
    except json.JSONDecodeError:
      pass
  return "started" if workdir.exists() else "new"


def load_config(file: str, arg: str = ""):
  """`get_config(arg)` of a config file, as `--config=FILE:ARG` gives it."""
  import importlib.util
  path = Path(file)
  if not path.exists():
    raise SweepError(f"config file {file} not found")
  spec = importlib.util.spec_from_file_location(f"_sweep_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  try:
    return module.get_config(arg or None)
  except ValueError as e:
    raise SweepError(f"{file}:{arg}: {e}") from None
