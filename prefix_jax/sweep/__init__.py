"""Sweeps: a grid of config values, each cell an ordinary run in its own workdir.

`python -m prefix_jax.sweep --config=configs/e2e.py:model=smollm2-135m --grid prefix_len=1,5,10
--grid seed=0,1,2 --root runs/e2e_len` (see docs/sweeps.md). Modules: `grid` (cells and their
names), `launch` (running cells: subprocesses, in-process, one program, slurm scripts),
`results` (the results file, mean ± std tables and plots).
"""
from prefix_jax.sweep.grid import Cell, SweepError, make_cells, parse_grid
from prefix_jax.sweep.launch import run_sweep

__all__ = ["Cell", "SweepError", "make_cells", "parse_grid", "run_sweep"]
