"""experiments.paper: every table and figure at tiny scale, ours beside the paper's numbers."""
import json
from pathlib import Path

import pytest

from experiments.paper.__main__ import main as paper_main
from experiments.paper.__main__ import make_table
from experiments.paper.cells import build_cells, column_groups, missing_reason
from experiments.paper.published import PAPER
from experiments.paper.specs import SCALES, SPECS
from task_fixtures import shared_with_xsum

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
  monkeypatch.chdir(ROOT)  # config files are named relative to the repository


@pytest.mark.parametrize("scale", sorted(SCALES))
@pytest.mark.parametrize("name", sorted(SPECS))
def test_cells_cover_rows_columns_x_and_seeds(name, scale, tmp_path):
  spec = SPECS[name]
  cells = build_cells(spec, scale, tmp_path)
  xs = len(spec.x_values[scale]) if spec.x_key else 1
  seeds = len(SCALES[scale].seeds) if spec.seeded else 1
  assert len(cells) == len(spec.rows) * len(column_groups(spec)) * xs * seeds
  assert len({c.workdir for c in cells}) == len(cells)


def _expected_body_rows(spec, scale="tiny"):
  xs = spec.x_values[scale] if spec.x_key else (None,)
  return [[r.label] + ([str(x)] if spec.x_key else []) for r in spec.rows for x in xs]


def _check_rendered(spec, root):
  for ext in ("md", "tex", "json") + (("png",) if spec.kind == "figure" else ()):
    assert (root / f"{spec.name}.{ext}").stat().st_size > 0, ext
  out = json.loads((root / f"{spec.name}.json").read_text())
  width = 2 if spec.x_key else 1
  assert [row[:width] for row in out["body"]] == _expected_body_rows(spec)
  for col in spec.columns:
    assert f"{col.label} ours" in out["headers"] and f"{col.label} paper" in out["headers"]
  md = (root / f"{spec.name}.md").read_text()
  for (table, row, col), (value, cite) in PAPER.items():
    if table == spec.name:  # the paper's number beside ours, in its row and column
      line = out["body"][[r.label for r in spec.rows].index(row)]
      assert line[out["headers"].index(f"{col} paper")] == f"{value:g}"
      assert cite in md
  return out


def test_every_table_renders_paper_numbers_beside_fake_scores(tmp_path):
  """Rendering alone, every spec (cells that exist or not): scores written by hand."""
  for spec in SPECS.values():
    for tc in build_cells(spec, "tiny", tmp_path / "cells"):
      tc.workdir.mkdir(parents=True, exist_ok=True)
      metrics = {c.metric: 0.5 for c in spec.columns}
      (tc.workdir / "scores.json").write_text(json.dumps(metrics))
      (tc.workdir / "summary.json").write_text(json.dumps(
          {"status": "completed", "trainable_params": 2, "backbone_params": 1000}))
    assert paper_main([spec.name, "--scale", "tiny", "--root", str(tmp_path),
                       "--render_only"]) == 0
    out = _check_rendered(spec, tmp_path)
    ours = out["body"][0][out["headers"].index(f"{spec.columns[0].label} ours")]
    assert ours == f"{0.5 * spec.columns[0].factor:.2f}"
    assert out["body"][0][out["headers"].index("% params")] == "0.200"


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
  return tmp_path_factory.mktemp("paper")  # tables share cells (e.g. the E2E prefix run)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_tiny_scale_runs_and_renders(name, shared_root, shared_dir, tmp_path, monkeypatch):
  spec = SPECS[name]
  if any(c.task == "xsum" for c in spec.columns):  # XSUM's files are not in shared/: a fixture
    shared_with_xsum(tmp_path, monkeypatch, n=60)  # within_news keeps a fraction for training
  missing = {m for tc in build_cells(spec, "tiny", shared_root / "cells")
             if (m := missing_reason(tc))}
  if missing:
    pytest.skip(f"{name} needs what this code lacks: {'; '.join(sorted(missing))}")
  files, failed = make_table(name, "tiny", shared_root)
  assert not failed
  out = _check_rendered(spec, shared_root)
  first = spec.columns[0].label
  assert all(row[out["headers"].index(f"{first} ours")] != "n/a" for row in out["body"])
