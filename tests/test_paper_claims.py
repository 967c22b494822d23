"""The README's reproduction verdicts are computed from the committed raw rows, and each
verdict follows the numbers (it fails when they say otherwise)."""
import json
from pathlib import Path

import pytest

from experiments.paper import claims
from experiments.paper.specs import SPECS

ROOT = Path(__file__).resolve().parent.parent


def _row(table, row, x, task, scores, seed=0, share=0.001):
  return {"row": row, "x": x, "seed": seed, "task": task, "column_args": "", "config": "c",
          "status": "finished", "scores": scores, "trainable_share": share}


def _write(results: Path, table: str, rows: list[dict]) -> None:
  results.mkdir(parents=True, exist_ok=True)
  (results / f"{table}.rows.json").write_text(json.dumps(rows))


def test_readme_section_equals_what_the_committed_results_say():
  readme = claims.readme_section(ROOT / "README.md")
  assert readme, "README.md has no reproduction section"
  assert readme == claims.section(ROOT / "results" / "mini")


def test_prefix_near_ft_follows_the_numbers(tmp_path):
  claim = claims.CLAIMS[0]
  _write(tmp_path, "table1", [_row("table1", "FT", None, "e2e", {"bleu": 50.0}, share=1.0),
                              _row("table1", "Prefix 0.1%", None, "e2e", {"bleu": 49.0})])
  line = claims.verdict_line(claim, tmp_path)
  assert "shows it" in line and "Prefix 49.0 vs FT 50.0" in line and "0.100%" in line
  _write(tmp_path, "table1", [_row("table1", "FT", None, "e2e", {"bleu": 50.0}, share=1.0),
                              _row("table1", "Prefix 0.1%", None, "e2e", {"bleu": 40.0})])
  assert "does not show it" in claims.verdict_line(claim, tmp_path)


def test_low_data_uses_every_seed_and_size(tmp_path):
  claim = claims.CLAIMS[3]
  rows = [_row("figure3", m, n, "e2e", {"bleu": b, "rouge_l": 0.1}, seed=s)
          for n in (50, 100) for s, (bp, bf) in enumerate([(30.0, 20.0), (10.0, 40.0)])
          for m, b in (("Prefix", bp), ("FT", bf))]
  _write(tmp_path, "figure3", rows)
  line = claims.verdict_line(claim, tmp_path)  # means 20.0 vs 30.0 at both sizes
  assert "does not show it" in line and "n=50: Prefix 20.0 vs FT 30.0" in line


def test_interior_optimum_and_missing_cells(tmp_path):
  claim = claims.CLAIMS[4]
  bleu = {1: 20.0, 5: 50.0, 10: 30.0}
  _write(tmp_path, "figure4", [_row("figure4", "Prefix", n, "e2e", {"bleu": b})
                               for n, b in bleu.items()])
  assert "shows it" in claims.verdict_line(claim, tmp_path)
  bleu[10] = 60.0
  _write(tmp_path, "figure4", [_row("figure4", "Prefix", n, "e2e", {"bleu": b})
                               for n, b in bleu.items()])
  assert "does not show it" in claims.verdict_line(claim, tmp_path)
  _write(tmp_path, "table5", [_row("table5", "EMB-10", None, "e2e", {"bleu": 10.0})])
  assert "lacks INFIX-10" in claims.verdict_line(claims.CLAIMS[2], tmp_path)


def test_every_claim_names_a_table_that_exists():
  assert {c.table for c in claims.CLAIMS} <= set(SPECS)


def test_replace_section_refuses_a_readme_without_markers():
  with pytest.raises(ValueError, match="reproduction:begin"):
    claims.replace_section("no markers", "x")
