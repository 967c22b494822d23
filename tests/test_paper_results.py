"""Tables cannot drift from their data: every table renders again from its saved raw rows
alone to the same files (the committed results/ included), and finished rows survive the loss
of their workdirs (a fresh clone) without their cells running again."""
import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from experiments.paper import __main__ as paper
from experiments.paper.cells import build_cells
from experiments.paper.specs import SPECS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = sorted(ROOT.glob("results/*/*.rows.json"))


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
  monkeypatch.chdir(ROOT)


def _fake_scores(spec, root: Path) -> None:
  for i, tc in enumerate(build_cells(spec, "tiny", root / "cells")):
    tc.workdir.mkdir(parents=True, exist_ok=True)
    (tc.workdir / "scores.json").write_text(json.dumps({c.metric: 0.1 + i / 100
                                                        for c in spec.columns}))
    (tc.workdir / "summary.json").write_text(json.dumps(
        {"status": "completed", "trainable_params": 2, "backbone_params": 1000, "step": 1}))


def assert_same_files(a: Path, b: Path, name: str) -> None:
  for ext in ("md", "tex", "json"):
    assert (a / f"{name}.{ext}").read_text() == (b / f"{name}.{ext}").read_text(), ext
  if (a / f"{name}.png").exists():
    np.testing.assert_array_equal(matplotlib.image.imread(a / f"{name}.png"),
                                  matplotlib.image.imread(b / f"{name}.png"))


@pytest.mark.parametrize("name", ["table1", "figure3"])
def test_a_table_renders_again_from_its_raw_rows_alone(name, tmp_path):
  _fake_scores(SPECS[name], tmp_path)
  paper.make_table(name, "tiny", tmp_path, out=tmp_path / "out", render_only=True)
  rows = json.loads((tmp_path / "out" / f"{name}.rows.json").read_text())
  assert all(r["status"] == "finished" and r["config"] for r in rows)
  shutil.rmtree(tmp_path / "cells")
  paper.rerender(name, tmp_path / "out", tmp_path / "again")
  assert_same_files(tmp_path / "out", tmp_path / "again", name)
  # and the check can fail: one changed score changes the table
  rows[0]["scores"] = {k: v + 0.5 for k, v in rows[0]["scores"].items()}
  (tmp_path / "out" / f"{name}.rows.json").write_text(json.dumps(rows))
  paper.rerender(name, tmp_path / "out", tmp_path / "changed")
  assert (tmp_path / "changed" / f"{name}.md").read_text() != (
      tmp_path / "again" / f"{name}.md").read_text()


def test_saved_rows_survive_lost_workdirs_and_are_not_run_again(tmp_path, monkeypatch):
  name = "table5"
  _fake_scores(SPECS[name], tmp_path)
  paper.make_table(name, "tiny", tmp_path, out=tmp_path / "out", render_only=True)
  before = (tmp_path / "out" / f"{name}.md").read_text()
  shutil.rmtree(tmp_path / "cells")
  ran = []
  monkeypatch.setattr(paper, "run_cells", lambda cells, *a, **k: ran.extend(cells) or [])
  paper.make_table(name, "tiny", tmp_path, out=tmp_path / "out")
  assert ran == []
  assert (tmp_path / "out" / f"{name}.md").read_text() == before
  run = json.loads((tmp_path / "out" / f"{name}.run.json").read_text())
  assert run["command"].startswith("python -m experiments.paper table5 --scale tiny")
  assert run["machine"]["usable_cores"] >= 1 and run["finished"] == run["cells"]


@pytest.mark.skipif(not RESULTS, reason="no committed results/*/*.rows.json yet")
@pytest.mark.parametrize("rows", RESULTS, ids=[f"{p.parent.name}/{p.name}" for p in RESULTS])
def test_committed_tables_equal_a_fresh_render_of_their_rows(rows, tmp_path):
  name = rows.name.removesuffix(".rows.json")
  paper.rerender(name, rows.parent, tmp_path)
  assert_same_files(rows.parent, tmp_path, name)


def test_stored_parameters_count_each_exported_tensor_once(tmp_path):
  from safetensors.numpy import save_file
  from prefix_jax.train.method_run import stored_parameters
  assert stored_parameters(tmp_path) is None
  save_file({"keys": np.zeros((2, 5, 3), np.float32), "values": np.zeros((2, 5, 3), np.float32)},
            str(tmp_path / "prefix.safetensors"))
  save_file({"keys": np.zeros((99,), np.float32)}, str(tmp_path / "prefix_init.safetensors"))
  save_file({"backbone/classifier/kernel": np.zeros((4, 2), np.float32)},
            str(tmp_path / "method.safetensors"))
  save_file({"classifier/kernel": np.zeros((4, 2), np.float32)},
            str(tmp_path / "head.safetensors"))
  assert stored_parameters(tmp_path) == 30 + 30 + 8  # the head once; the init file not at all
