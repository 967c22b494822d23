"""Orbax checkpoints of the trainable state (+ optimizer state, step, data position, rng).

Only what is trained is saved: the backbone never enters a checkpoint. `workdir/run.json`
records what the checkpoints belong to (backbone shapes, prefix spec, what is trainable);
a workdir holding checkpoints of another run is refused before anything is written.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp


class WorkdirError(ValueError):
  """The workdir cannot be used for this run (message names the path and the mismatch)."""


def check_workdir(workdir: Path, signature: dict, write: bool = True) -> None:
  """Creates workdir if needed, checks it is writable and belongs to this run. Only the main
  process (`write`) records run.json; the others check it after a barrier."""
  workdir = Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_probe"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise WorkdirError(f"workdir {workdir} is not writable ({e.strerror})") from None
  run_file = workdir / "run.json"
  if not write:
    return
  if run_file.exists():
    try:
      recorded = json.loads(run_file.read_text())
    except json.JSONDecodeError:
      raise WorkdirError(f"{run_file} is corrupt; refusing to reuse workdir {workdir}") from None
    if recorded != signature:
      diff = sorted(k for k in set(recorded) | set(signature)
                    if recorded.get(k) != signature.get(k))
      raise WorkdirError(f"workdir {workdir} holds a run of a different model or prefix "
                         f"(differs in {diff}: {[recorded.get(k) for k in diff]} vs "
                         f"{[signature.get(k) for k in diff]}); use a new --workdir")
  elif any((workdir / "checkpoints").glob("*")):
    raise WorkdirError(f"workdir {workdir} holds checkpoints but no run.json; refusing to "
                       "mix runs")
  else:
    run_file.write_text(json.dumps(signature, indent=1, sort_keys=True))


class Checkpointer:
  """Latest checkpoints under `checkpoints/` (resume) and the best one under `best/`."""

  def __init__(self, workdir: Path, keep: int = 2):
    opts = dict(enable_async_checkpointing=False, create=True)
    self.latest = ocp.CheckpointManager(
        Path(workdir).absolute() / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts))
    self.best = ocp.CheckpointManager(
        Path(workdir).absolute() / "best",
        options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m["score"],
                                             best_mode="max", **opts))

  def save(self, step: int, state, meta: dict) -> None:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    self.latest.save(step, args=args, force=True)
    self.latest.wait_until_finished()

  def save_best(self, step: int, state, meta: dict, score: float) -> None:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    self.best.save(step, args=args, metrics={"score": float(score)}, force=True)
    self.best.wait_until_finished()

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def restore(self, abstract_state, step: int | None = None, best: bool = False):
    """(state, meta) of `step` (default: latest / best), or None if there is none."""
    mgr = self.best if best else self.latest
    step = (mgr.best_step() if best else mgr.latest_step()) if step is None else step
    if step is None:
      return None
    target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
    out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                    meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]

  def close(self):
    self.latest.close()
    self.best.close()
