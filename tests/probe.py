"""What a training run really did, observed from inside it (for the trainer's subprocess tests).

`install()` wraps `prefix_jax.train.mesh.put_batch`, through which every step's batch reaches
the devices. At the first step it records the batch's layout (devices it is split over, rows
per device) and how the largest frozen weight alive at that moment is laid out (the factor by
which it is split across devices: 1 when replicated); it counts the steps this process ran.
`report()` gives one line `probe={json}` for the test to parse.
"""
import json

import jax
import numpy as np

from prefix_jax.train import mesh as mesh_lib

SEEN = {"steps": 0}


def _layout(batch) -> dict:
  leaves = jax.tree_util.tree_leaves(batch)
  rows = max(leaves, key=lambda a: a.ndim)
  in_batch = {id(a) for a in leaves}
  # The frozen backbone was placed before the first step: the largest live float matrix is
  # one of its weights (the host's unsplit copy of it may be alive too, hence the max).
  weights = [a for a in jax.live_arrays()
             if id(a) not in in_batch and a.ndim >= 2 and a.dtype.kind == "f"]
  size = max(a.size for a in weights)
  split = max(a.size // int(np.prod(a.sharding.shard_shape(a.shape)))
              for a in weights if a.size == size)
  return {"batch_devices": len(rows.sharding.device_set), "batch_rows": int(rows.shape[0]),
          "rows_per_device": int(rows.sharding.shard_shape(rows.shape)[0]),
          "largest_weight_split": int(split)}


def install() -> None:
  original = mesh_lib.put_batch

  def put_batch(batch, mesh):
    out = original(batch, mesh)
    if not SEEN["steps"]:
      SEEN.update(_layout(out))
    SEEN["steps"] += 1
    return out

  mesh_lib.put_batch = put_batch


def report() -> str:
  return "probe=" + json.dumps(SEEN, sort_keys=True)


def parse(output: str) -> dict:
  """The probe of a run's output (the last `probe=` line)."""
  lines = [l for l in output.splitlines() if l.startswith("probe=")]
  assert lines, f"the run printed no probe line:\n{output[-3000:]}"
  return json.loads(lines[-1][len("probe="):])
