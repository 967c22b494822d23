"""Run logs: tqdm on a terminal (quiet in CI), TensorBoard events, metrics.jsonl, a PNG plot."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import tqdm


def summary_writer_class():
  """tensorboardX's `SummaryWriter`, imported without torch where torch is not imported yet.

  tensorboardX imports torch wherever it is installed (the test extras install it), only to
  accept torch tensors, which this package never logs; that import costs more CPU than all
  of a run's other imports. While tensorboardX is imported, `import torch` fails with the
  ImportError that tensorboardX expects from an interpreter without torch."""
  if "torch" in sys.modules:
    from tensorboardX import SummaryWriter
    return SummaryWriter
  sys.modules["torch"] = None
  try:
    from tensorboardX import SummaryWriter
  finally:
    if sys.modules.get("torch", False) is None:
      del sys.modules["torch"]
  return SummaryWriter


def interactive() -> bool:
  return sys.stderr.isatty() and not os.environ.get("CI")


class MetricLogger:
  """metrics.jsonl rows `{"step", "split", "time", **metrics}`; `time` (seconds of training)
  continues across resumes from the file's last row."""

  def __init__(self, workdir: Path, total_steps: int, initial_step: int = 0,
               enabled: bool = True):
    self.workdir = Path(workdir)
    self.enabled = enabled
    elapsed = _last_time(self.workdir / "metrics.jsonl") if enabled else 0.0
    self.jsonl = open(self.workdir / "metrics.jsonl", "a") if enabled else None
    self.tb = None
    if enabled:
      self.tb = summary_writer_class()(str(self.workdir / "tensorboard"))
    self.bar = tqdm.tqdm(total=total_steps, initial=initial_step, disable=not (
        enabled and interactive()), dynamic_ncols=True, unit="step")
    self.t0 = time.time() - elapsed

  def write(self, step: int, split: str, metrics: dict) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), "split": split, "time": time.time() - self.t0,
           **{k: float(v) for k, v in metrics.items()}}
    self.jsonl.write(json.dumps(row) + "\n")
    self.jsonl.flush()
    for k, v in metrics.items():
      self.tb.add_scalar(f"{split}/{k}", float(v), int(step))
    if split == "train":
      self.bar.set_postfix({k: f"{float(v):.4g}" for k, v in metrics.items()
                            if k in ("loss", "tokens_per_s")})
    elif not interactive():
      print(f"step {step} {split}: " + ", ".join(f"{k}={float(v):.4g}"
                                                  for k, v in metrics.items()), flush=True)

  def advance(self, n: int = 1) -> None:
    self.bar.update(n)

  def close(self) -> None:
    self.bar.close()
    if self.enabled:
      self.jsonl.close()
      self.tb.close()


def read_rows(path: Path) -> list[dict]:
  """The complete rows of a metrics.jsonl (a row cut short by a kill is skipped)."""
  rows = []
  for line in Path(path).read_text().splitlines() if Path(path).exists() else ():
    try:
      rows.append(json.loads(line))
    except ValueError:
      continue
  return rows


def _last_time(path: Path) -> float:
  """The `time` of the last row of a metrics.jsonl (0 if none): time continues on resume."""
  rows = read_rows(path)
  return float(rows[-1].get("time", 0.0)) if rows else 0.0


def plot_curves(workdir: Path, out_name: str = "curves.png") -> Path | None:
  """Train / validation loss against step, from metrics.jsonl."""
  path = Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return None
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rows = read_rows(path)
  fig, ax = plt.subplots(figsize=(6, 4))
  for split in ("train", "eval"):
    pts = [(r["step"], r["loss"]) for r in rows if r["split"] == split and "loss" in r]
    if pts:
      ax.plot(*zip(*pts), marker="o" if split == "eval" else None, label=f"{split} loss")
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.legend()
  ax.grid(alpha=0.3)
  out = Path(workdir) / out_name
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return out
