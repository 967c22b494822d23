"""A sweep's results: one row per cell (results.jsonl / results.csv), seeds aggregated as
mean ± std (results.md / results.tex), and a plot of the swept key against each metric."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import tabulate

from prefix_jax.sweep.grid import SEED_KEYS, cell_status
from prefix_jax.sweep.record import CELL_FILE
from prefix_jax.train.method_run import stored_parameters


def _read(path: Path) -> dict:
  try:
    return json.loads(path.read_text()) if path.exists() else {}
  except json.JSONDecodeError:
    return {}


def cell_row(cell, root) -> dict:
  """config values, status, scores, trainable share (training: a prefix's MLP included),
  stored share (per task: `stored_parameters`), steps, wall time, commit of one cell."""
  wd = cell.workdir(root)
  summary, scores, record = (_read(wd / n) for n in ("summary.json", "scores.json", CELL_FILE))
  share = summary.get("trainable_share")
  if share is None and summary.get("backbone_params"):
    share = summary["trainable_params"] / summary["backbone_params"]
  stored = stored_parameters(wd)
  backbone = summary.get("backbone_params")
  return {"cell": cell.name, **dict(cell.values), "status": cell_status(wd),
          "scores": scores, "trainable_params": summary.get("trainable_params"),
          "trainable_share": share, "stored_params": stored,
          "stored_share": stored / backbone if stored and backbone else None,
          "steps": summary.get("step"),
          "wall_s": record.get("wall_s"), "commit": record.get("commit"),
          "load_1m_at_starts": record.get("load_1m_at_starts")}


def mean_std(values: list[float]) -> tuple[float, float, int]:
  """(mean, sample std (0 for one value), n)."""
  arr = np.asarray(values, np.float64)
  return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, len(arr)


def fmt(mean: float, std: float, n: int, digits: int = 2) -> str:
  return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def aggregate(rows: list[dict], keys: list[str]) -> tuple[list[str], list[dict]]:
  """Finished rows grouped by the non-seed `keys` -> (metrics, [{key: value, ..., 'n': seeds,
  metric: (mean, std, n)}]) in first-seen order."""
  group_keys = [k for k in keys if k not in SEED_KEYS]
  done = [r for r in rows if r["status"] == "finished"]
  metrics = list(dict.fromkeys(m for r in done for m in r["scores"]))
  groups: dict[tuple, list[dict]] = {}
  for r in done:
    groups.setdefault(tuple(r[k] for k in group_keys), []).append(r)
  out = []
  for values, members in groups.items():
    entry = dict(zip(group_keys, values), n=len(members))
    for m in metrics:
      entry[m] = mean_std([r["scores"][m] for r in members if m in r["scores"]])
    out.append(entry)
  return metrics, out


def markdown(headers: list[str], body: list[list[str]]) -> str:
  return tabulate.tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def latex(headers: list[str], body: list[list[str]]) -> str:
  def esc(s):
    return str(s).replace("\\", "\\textbackslash{}").replace("_", "\\_").replace(
        "%", "\\%").replace("&", "\\&").replace("#", "\\#").replace("±", "$\\pm$")
  return tabulate.tabulate([[esc(c) for c in row] for row in body],
                           headers=[esc(h) for h in headers], tablefmt="latex_raw",
                           disable_numparse=True)


def table(rows: list[dict], keys: list[str]) -> tuple[list[str], list[list[str]]]:
  metrics, groups = aggregate(rows, keys)
  group_keys = [k for k in keys if k not in SEED_KEYS]
  headers = group_keys + ["seeds"] + metrics
  body = [[str(g[k]) for k in group_keys] + [str(g["n"])] + [fmt(*g[m]) for m in metrics]
          for g in groups]
  return headers, body


def _as_numbers(values: list[str]) -> list[float] | None:
  try:
    return [float(v) for v in values]
  except ValueError:
    return None


def plot(rows: list[dict], keys: list[str], out: Path) -> Path | None:
  """The first non-seed key on x against each metric (one panel each; one line per value of
  the other keys; error bars: std over seeds)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  metrics, groups = aggregate(rows, keys)
  group_keys = [k for k in keys if k not in SEED_KEYS]
  if not metrics or not group_keys:
    return None
  x_key, others = group_keys[0], group_keys[1:]
  fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
  lines: dict[tuple, list[dict]] = {}
  for g in groups:
    lines.setdefault(tuple(g[k] for k in others), []).append(g)
  for ax, m in zip(axes[0], metrics):
    for label, pts in lines.items():
      xs = [p[x_key] for p in pts]
      nums = _as_numbers(xs)
      order = np.argsort(nums) if nums else np.arange(len(xs))
      x = np.asarray(nums)[order] if nums else order
      ax.errorbar(x, [pts[i][m][0] for i in order], yerr=[pts[i][m][1] for i in order],
                  marker="o", capsize=3,
                  label=",".join(f"{k}={v}" for k, v in zip(others, label)) or None)
      if not nums:
        ax.set_xticks(range(len(xs)), [xs[i] for i in order])
    ax.set_xlabel(x_key)
    ax.set_title(m)
    ax.grid(alpha=0.3)
    if others:
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return out


def write_all(cells, root, keys: list[str]) -> dict[str, Path]:
  """results.jsonl, results.csv, results.md, results.tex, results.png under `root`."""
  root = Path(root)
  rows = [cell_row(c, root) for c in cells]
  files = {"results": root / "results.jsonl", "csv": root / "results.csv",
           "markdown": root / "results.md", "latex": root / "results.tex"}
  files["results"].write_text("".join(json.dumps(r) + "\n" for r in rows))
  metrics = list(dict.fromkeys(m for r in rows for m in r["scores"]))
  fields = ["cell", *keys, "status", *metrics, "trainable_params", "trainable_share", "steps",
            "wall_s", "commit"]
  with open(files["csv"], "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    for r in rows:
      writer.writerow({**{k: v for k, v in r.items() if k in fields}, **r["scores"]})
  headers, body = table(rows, keys)
  files["markdown"].write_text(markdown(headers, body) + "\n")
  files["latex"].write_text(latex(headers, body) + "\n")
  png = plot(rows, keys, root / "results.png")
  if png:
    files["plot"] = png
  return files
