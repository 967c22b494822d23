"""Orbax checkpoints of the trainable state (+ optimizer state, step, data position, rng).

Only what is trained is saved: the backbone never enters a checkpoint. `workdir/run.json`
records what the checkpoints belong to (backbone shapes, prefix spec, what is trainable);
a workdir holding checkpoints of another run is refused before anything is written.

A save that fails (disk full) removes its temporary folder and leaves the earlier checkpoints
as they were; a resume whose latest checkpoint is unreadable moves it aside to
`checkpoints_unreadable/` and falls back to the one before, with a warning.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from prefix_jax.errors import CheckpointError, UserError, one_line


class WorkdirError(UserError, ValueError):
  """The workdir cannot be used for this run (message names the path and the mismatch)."""


def check_workdir(workdir: Path, signature: dict, write: bool = True,
                  dry_run: bool = False) -> None:
  """Creates workdir if needed, checks it is writable and belongs to this run. Only the main
  process (`write`) records run.json; the others check it after a barrier. `dry_run`: every
  check, but run.json is not written yet."""
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
  elif not dry_run:
    run_file.write_text(json.dumps(signature, indent=1, sort_keys=True))


class Checkpointer:
  """Latest checkpoints under `checkpoints/` (resume) and the best one under `best/`."""

  def __init__(self, workdir: Path, keep: int = 2):
    self.workdir = Path(workdir).absolute()
    self.keep = keep
    self.latest = self._manager("checkpoints", keep)
    self.best = self._manager("best", 1, best_fn=lambda m: m["score"], best_mode="max")

  def _manager(self, name: str, keep: int, **best) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(self.workdir / name, options=ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=False, create=True, **best))

  def save(self, step: int, state, meta: dict) -> None:
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict, score: float) -> None:
    self._save(self.best, step, state, meta, metrics={"score": float(score)})

  def _save(self, mgr, step: int, state, meta: dict, **kw) -> None:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    try:
      with _orbax_errors_quiet():  # a failure is reported once, below, not as log tracebacks
        mgr.save(step, args=args, force=True, **kw)
        mgr.wait_until_finished()
    except Exception as e:
      _remove_temporaries(Path(mgr.directory))
      cause = _os_error(e)
      if cause is None:
        raise
      raise CheckpointError(
          f"cannot save checkpoint step {step} in {mgr.directory} ({cause.strerror or cause}); "
          f"earlier checkpoints {list(mgr.all_steps())} are kept") from None

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

  def restore_latest_readable(self, abstract_state):
    """Like `restore`, but an unreadable latest checkpoint is moved to
    `checkpoints_unreadable/` (with a warning) and the one before is tried, and so on."""
    steps = sorted(self.latest.all_steps(), reverse=True)
    errors = []
    for step in steps:
      try:
        out = self.restore(abstract_state, step)
      except Exception as e:  # orbax / tensorstore raise many types for a damaged folder
        errors.append(f"step {step}: {type(e).__name__}: {one_line(e)[:200]}")
        continue
      if errors:
        self._set_aside([s for s in steps if s > step], step, errors)
      return out
    if errors:
      raise CheckpointError(f"no readable checkpoint in {self.latest.directory} ({errors[0]}); "
                            "move the folder away to start over")
    return None

  def _set_aside(self, bad_steps: list[int], good: int, errors: list[str]) -> None:
    src = Path(self.latest.directory)
    aside = self.workdir / "checkpoints_unreadable"
    aside.mkdir(exist_ok=True)
    for s in bad_steps:
      shutil.move(str(src / str(s)), str(aside / f"{s}.{len(list(aside.iterdir()))}"))
    print(f"warning: checkpoint {errors[0]} is unreadable; moved to {aside}, resuming from "
          f"step {good}", file=sys.stderr)
    self.latest.close()
    self.latest = self._manager("checkpoints", self.keep)

  def close(self):
    self.latest.close()
    self.best.close()


@contextlib.contextmanager
def _orbax_errors_quiet():
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)


def _os_error(e: BaseException) -> OSError | None:
  """The OSError behind `e` (orbax may wrap it), or None."""
  while e is not None:
    if isinstance(e, OSError):
      return e
    e = e.__cause__ or e.__context__
  return None


def _remove_temporaries(folder: Path, settle_s: float = 0.2, timeout_s: float = 10.0) -> None:
  """Removes the temporary folders of a failed save. Orbax writes the parts of a checkpoint
  concurrently, so writes of other parts may still be landing: wait until the folders stop
  changing first (else they would be re-created after the removal)."""
  def snapshot():
    return sorted(str(p) for p in folder.glob("*.orbax-checkpoint-tmp*/**/*"))
  last, deadline = None, time.monotonic() + timeout_s
  while time.monotonic() < deadline and (now := snapshot()) != last:
    last = now
    time.sleep(settle_s)
  for tmp in folder.glob("*.orbax-checkpoint-tmp*"):
    shutil.rmtree(tmp, ignore_errors=True)
