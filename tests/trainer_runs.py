"""Runs of a tiny config for the trainer tests: in a subprocess (`run_tiny.py`, with its own
XLA flags, e.g. a device count) and the prefix a run exported."""
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from prefix_jax.train.export import load_prefix
from conftest import with_xla_flags

ROOT = Path(__file__).resolve().parent.parent
E2E = str(ROOT / "configs" / "e2e.py")
RUNNER = str(Path(__file__).resolve().parent / "run_tiny.py")


def prefix_arrays(workdir, name: str = "prefix.safetensors"):
  """The prefix parameters a run wrote to `workdir/name`, as numpy arrays."""
  _, params, _ = load_prefix(Path(workdir) / name)
  return jax.tree_util.tree_map(np.asarray, params)


def run_subprocess(workdir, *args, env=None, **kw):
  """`run_tiny.py E2E workdir key=value...` started with XLA flags `env` added; stdout and
  stderr together."""
  env = with_xla_flags(env or {})
  return subprocess.Popen([sys.executable, RUNNER, E2E, str(workdir), *args], env=env,
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
