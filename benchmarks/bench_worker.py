"""A benchmark worker: `python -m benchmarks.bench_worker {jax|torch}`.

Reads one JSON command per line on stdin and answers one JSON line on stdout:
  {"op": "setup", "job": name, "kind": kind, "args": {...}} -> {"ok", "info"}
  {"op": "run", "job": name}  -> {"ok", "seconds", "tokens", "loss"?}  (one measured call)
  {"op": "reset_peak"}        -> {"ok", "reset"}  (start of the measured phase)
  {"op": "memory"}            -> {"ok", "peak_rss_mib", "phase_peak_rss_mib"?, "device_peak_mib"?}
  {"op": "drop", "job": name} / {"op": "quit"}
Errors answer {"ok": false, "error": traceback}. Anything the libraries print goes to stderr
(the parent's log file), never into the answers.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import traceback

from benchmarks import bench_common

KINDS = {  # kind -> (module, class); modules are imported only when a job of theirs is set up
    "jax_train": ("benchmarks.bench_train", "JaxTrainJob"),
    "matmul": ("benchmarks.bench_flops", "MatmulJob"),
    "decode": ("benchmarks.bench_decode", "DecodeJob"),
    "torch_train": ("benchmarks.bench_peft", "TorchTrainJob"),
}


def _import_engine(engine: str) -> None:
  # Imported up front so that workers started together pay their import time together.
  if engine == "jax":
    from prefix_jax.runtime import collect_less, keep_freed_memory
    keep_freed_memory()  # as `prefix_jax.main` does, before JAX starts its threads
    import jax  # noqa: F401
    import flax.linen  # noqa: F401
    collect_less()  # as `prefix_jax.main` does after its imports
  elif engine == "torch":  # peft (slow to import) only where a PEFT job needs it
    import torch  # noqa: F401
    import transformers  # noqa: F401
  else:
    raise SystemExit(f"unknown engine {engine!r} (jax, torch)")


def _device_peak_mib() -> float | None:
  if "jax" not in sys.modules:
    return None
  import jax
  stats = jax.local_devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 2**20


def _reset_peak() -> bool:
  """Resets the kernel's peak-RSS mark (VmHWM) so that the measured phase's peak can be read
  apart from loading's; False where /proc does not allow it."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _vm_hwm_mib() -> float | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return None


def _handle(jobs: dict, msg: dict, state: dict) -> dict:
  op = msg["op"]
  if op == "setup":
    import importlib
    module, cls = KINDS[msg["kind"]]
    job = getattr(importlib.import_module(module), cls)(**msg.get("args", {}))
    jobs[msg["job"]] = job
    return {"info": getattr(job, "info", {})}
  if op == "run":
    return jobs[msg["job"]].run()
  if op == "reset_peak":
    # ru_maxrss keeps the whole-process peak; only VmHWM is reset.
    state["peak_before_reset_mib"] = bench_common.peak_rss_mib()
    state["reset"] = _reset_peak()
    return {"reset": state["reset"]}
  if op == "memory":
    phase = _vm_hwm_mib() if state.get("reset") else None
    return {"peak_rss_mib": max(bench_common.peak_rss_mib(),
                                state.get("peak_before_reset_mib", 0.0)),
            "phase_peak_rss_mib": phase, "device_peak_mib": _device_peak_mib()}
  if op == "drop":
    jobs.pop(msg["job"], None)
    gc.collect()
    return {}
  raise ValueError(f"unknown op {op!r}")


def main() -> None:
  engine = sys.argv[1]
  answers = os.fdopen(os.dup(1), "w", buffering=1)
  os.dup2(2, 1)  # library output on fd 1 now lands in the log
  _import_engine(engine)
  jobs: dict = {}
  state: dict = {}
  for line in sys.stdin:
    msg = json.loads(line)
    if msg["op"] == "quit":
      break
    try:
      reply = {"ok": True, **_handle(jobs, msg, state)}
    except Exception:  # reported to the parent, which raises it with the worker's name
      reply = {"ok": False, "error": traceback.format_exc()}
    answers.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
  main()
