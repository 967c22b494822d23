"""Ours beside the paper's: Markdown, LaTeX and JSON for every spec, a PNG for figures."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.paper.published import paper_value
from experiments.paper.specs import Spec
from prefix_jax.sweep.results import fmt, latex, markdown, mean_std

NA = "n/a"


def collect(spec: Spec, rows: list[dict], missing: dict) -> dict:
  """(row label, x, column label) -> [ours on the paper's scale, one per seed]; and
  (row label, x) -> the share (%) of parameters stored per task (the paper's count; the
  trainable share where a run stored nothing) of its first finished cell.
  `rows`: `rows.raw_rows`."""
  values, share = {}, {}
  for r in rows:
    got = r.get("stored_share") or r.get("trainable_share")
    if (r["row"], r["x"]) not in share and got is not None:
      share[(r["row"], r["x"])] = 100 * got
    for col in (c for c in spec.columns if (c.task, c.args) == (r["task"], r["column_args"])):
      if col.metric in r["scores"]:
        values.setdefault((r["row"], r["x"], col.label), []).append(
            r["scores"][col.metric] * col.factor)
  return {"values": values, "share": share, "missing": missing}


def _ours(data, row, x, col) -> str:
  got = data["values"].get((row, x, col))
  return fmt(*mean_std(got)) if got else NA


def table_rows(spec: Spec, data: dict, xs) -> tuple[list[str], list[list[str]]]:
  """Header and body: one line per row (per x for figures); ours then the paper's value."""
  headers = ["Method"] + ([spec.x_key] if spec.x_key else []) + ["% params"]
  for col in spec.columns:
    headers += [f"{col.label} ours", f"{col.label} paper"]
  body = []
  for row in spec.rows:
    for x in xs:
      share = data["share"].get((row.label, x))
      line = [row.label] + ([str(x)] if spec.x_key else [])
      line.append(f"{share:.3f}" if share is not None else NA)
      for col in spec.columns:
        paper = paper_value(spec.name, row.label, col.label)
        line += [_ours(data, row.label, x, col.label), f"{paper[0]:g}" if paper else "—"]
      body.append(line)
  return headers, body


def footnotes(spec: Spec, data: dict) -> list[str]:
  notes = [f"{NA}: {row} not run here: {why}" for row, why in data["missing"].items()]
  cites = sorted({paper_value(spec.name, r.label, c.label)[1] for r in spec.rows
                  for c in spec.columns if paper_value(spec.name, r.label, c.label)})
  notes += [f"paper: Li & Liang (2021), {c}" for c in cites]
  notes += ["% params: parameters stored per task beside the frozen backbone (a prefix after "
            "its MLP is folded away), over the backbone's",
            "—: not given by the paper (or not transcribed)"]
  return notes + ([spec.note] if spec.note else [])


def plot(spec: Spec, data: dict, xs, out: Path) -> Path:
  """One panel per column: ours (mean ± std over seeds) per row against x; the paper's
  published values as crosses where it gives them."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(spec.columns), figsize=(4 * len(spec.columns), 3.4),
                           squeeze=False)
  for ax, col in zip(axes[0], spec.columns):
    if spec.x_key:
      for row in spec.rows:
        pts = [(float(x), *mean_std(data["values"][(row.label, x, col.label)])[:2]) for x in xs
               if (row.label, x, col.label) in data["values"]]
        if pts:
          px, mean, std = map(np.asarray, zip(*pts))
          ax.errorbar(px, mean, yerr=std, marker="o", capsize=3, label=f"{row.label} (ours)")
      ax.set_xlabel(spec.x_key)
    else:
      labels = [r.label for r in spec.rows]
      stats = [mean_std(data["values"].get((r.label, None, col.label), [np.nan]))
               for r in spec.rows]
      ax.bar(range(len(labels)), [s[0] for s in stats], yerr=[s[1] for s in stats],
             capsize=3, label="ours")
      ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    for i, row in enumerate(spec.rows):
      paper = paper_value(spec.name, row.label, col.label)
      if paper:
        ax.axhline(paper[0], ls="--", lw=0.8, color=f"C{i}", label=f"{row.label} (paper)")
    ax.set_title(col.label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(spec.title, fontsize=9)
  fig.tight_layout()
  fig.savefig(out, dpi=100, metadata={"Software": None})
  plt.close(fig)
  return out


def render(spec: Spec, rows: list[dict], missing: dict, xs, out_dir: Path) -> dict:
  """Writes SPEC.md, SPEC.tex, SPEC.json (and SPEC.png for figures) into out_dir, from the
  table's raw rows alone."""
  data = collect(spec, rows, missing)
  headers, body = table_rows(spec, data, xs)
  notes = footnotes(spec, data)
  out_dir.mkdir(parents=True, exist_ok=True)
  files = {"markdown": out_dir / f"{spec.name}.md", "latex": out_dir / f"{spec.name}.tex",
           "json": out_dir / f"{spec.name}.json"}
  files["markdown"].write_text(f"## {spec.title}\n\n{markdown(headers, body)}\n\n"
                               + "".join(f"- {n}\n" for n in notes))
  files["latex"].write_text(f"% {spec.title}\n{latex(headers, body)}\n"
                            + "".join(f"% {n}\n" for n in notes))
  files["json"].write_text(json.dumps({"name": spec.name, "title": spec.title,
                                       "headers": headers, "body": body, "notes": notes,
                                       "missing": missing}, indent=1))
  if spec.kind == "figure":
    files["plot"] = plot(spec, data, xs, out_dir / f"{spec.name}.png")
  return files
