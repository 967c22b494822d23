"""Section 5: the train-step comparison on a GPU in bfloat16, when JAX sees one.

The probe runs in a subprocess so that the parent never initializes (and preallocates on)
the GPU; workers run with XLA_PYTHON_CLIENT_PREALLOCATE=false so several share it and their
`peak_bytes_in_use` is their own. MFU is the analytic model FLOP/s over the card's datasheet
dense bf16 peak (the only number here that is not measured, and labelled so), and also over
the bf16 matmul FLOP/s measured in the same run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, by device_kind substring,
# most specific first.
DATASHEET_BF16_PEAK = (
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
    ("H20", 148e12), ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12),
)

GPU_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def probe() -> dict:
  """{'backend', 'device_kind', 'count'} of JAX's default backend, from a fresh process."""
  code = ("import jax, json; d = jax.devices(); print(json.dumps({'backend': "
          "jax.default_backend(), 'device_kind': d[0].device_kind, 'count': len(d)}))")
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  env.update(GPU_ENV)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
  if out.returncode != 0:
    return {"backend": "unknown", "error": out.stderr.strip().splitlines()[-1:]}
  return json.loads(out.stdout.strip().splitlines()[-1])


def datasheet_peak(device_kind: str) -> float | None:
  for name, peak in DATASHEET_BF16_PEAK:
    if name.lower() in device_kind.lower():
      return peak
  return None


def skip_reason(mode: str, found: dict) -> str | None:
  """Why the GPU section does not run (None: it runs)."""
  if mode == "off":
    return "--gpu=off"
  if found.get("backend") != "gpu" and mode != "on":
    return (f"no GPU: JAX's default backend is '{found.get('backend')}' "
            f"({found.get('device_kind', found.get('error'))}); this section runs where "
            "jax.default_backend() == 'gpu'")
  return None
