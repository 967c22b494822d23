"""MetricLogger: metrics.jsonl rows and TensorBoard scalars; tensorboardX comes without torch."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Logs two train rows and one eval row; prints whether torch ended up imported.
LOG_RUN = """
import sys
if sys.argv[2] == "torch-first":
  import torch
from prefix_jax.train.logger import MetricLogger
log = MetricLogger(sys.argv[1], total_steps=2)
log.write(1, "train", {"loss": 2.5})
log.write(2, "train", {"loss": 1.5})
log.write(2, "eval", {"loss": 1.75})
log.close()
print("torch" in sys.modules, sys.modules.get("torch", "absent") is None)
"""


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value)]} of the TensorBoard event files in `folder` (TFRecord framing:
  length u64, its crc u32, the Event proto, its crc u32)."""
  from tensorboardX.proto import event_pb2
  out = {}
  for path in sorted(folder.glob("events.out.tfevents.*")):
    data, i = path.read_bytes(), 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


@pytest.mark.parametrize("order", ["fresh", "torch-first"])
def test_scalars_are_logged_and_torch_is_imported_only_by_its_user(tmp_path, order):
  pytest.importorskip("torch")
  proc = subprocess.run([sys.executable, "-c", LOG_RUN, str(tmp_path), order], cwd=ROOT,
                        env=dict(os.environ, PREFIX_JAX_TEST_TORCH="1"),  # torch importable
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  imported, blocked_left = proc.stdout.splitlines()[-1].split()
  assert imported == str(order == "torch-first") and blocked_left == "False", proc.stdout
  rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["split"], r["loss"]) for r in rows] == [
      (1, "train", 2.5), (2, "train", 1.5), (2, "eval", 1.75)]
  assert _scalars(tmp_path / "tensorboard") == {"train/loss": [(1, 2.5), (2, 1.5)],
                                                "eval/loss": [(2, 1.75)]}
