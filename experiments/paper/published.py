"""Numbers published in Li & Liang (2021), "Prefix-Tuning: Optimizing Continuous Prompts for
Generation", ACL version (GPT-2 medium for table-to-text, BART-large for XSUM).

PAPER[(table, row label, column label)] = (value, citation). Only the numbers below are
transcribed; every other paper cell renders as '—' (not transcribed), never as a guess.
Scales as printed in the paper: BLEU, METEOR, ROUGE-L as 0-100 (E2E), NIST and CIDEr raw.
"""
from __future__ import annotations

_E2E = ("BLEU", "NIST", "MET", "R-L", "CIDEr")


def _row(table: str, row: str, cols, values, cite: str) -> dict:
  return {(table, row, c): (v, cite) for c, v in zip(cols, values)}


PAPER: dict[tuple[str, str, str], tuple[float, str]] = {
    **_row("table1", "FT", [f"E2E {c}" for c in _E2E], (68.8, 8.71, 46.1, 71.1, 2.43),
           "Table 1, row FINE-TUNE, E2E"),
    **_row("table1", "Prefix 0.1%", [f"E2E {c}" for c in _E2E], (70.3, 8.82, 46.3, 72.1, 2.46),
           "Table 1, row PREFIX (0.1%), E2E"),
    **_row("table1", "FT", ["WebNLG BLEU S", "WebNLG BLEU U", "WebNLG BLEU A"],
           (64.7, 26.7, 45.7), "Table 1, row FINE-TUNE, WebNLG BLEU S/U/A"),
    **_row("table1", "Prefix 0.1%", ["WebNLG BLEU S", "WebNLG BLEU U", "WebNLG BLEU A"],
           (62.9, 45.3, 55.0), "Table 1, row PREFIX (0.1%), WebNLG BLEU S/U/A"),
    **_row("table1", "FT", ["DART BLEU"], (46.2,), "Table 1, row FINE-TUNE, DART BLEU"),
    **_row("table1", "Prefix 0.1%", ["DART BLEU"], (46.4,), "Table 1, row PREFIX (0.1%), DART"),
    **_row("table2", "FT", ["R-1", "R-2", "R-L"], (45.14, 22.27, 37.25),
           "Table 2, row FINE-TUNE (Lewis et al. 2020)"),
    **_row("table2", "Prefix 2%", ["R-1", "R-2", "R-L"], (43.80, 20.93, 36.05),
           "Table 2, row PREFIX (2%)"),
    **{("table5", f"EMB-{k}", "E2E BLEU"): (v, f"Table 5, row EMB-{k}, E2E BLEU")
       for k, v in ((1, 48.1), (10, 62.2), (20, 61.9))},
    **{("table5", f"INFIX-{k}", "E2E BLEU"): (v, f"Table 5, row INFIX-{k}, E2E BLEU")
       for k, v in ((1, 67.9), (10, 67.2), (20, 66.7))},
}


def paper_value(table: str, row: str, column: str) -> tuple[float, str] | None:
  return PAPER.get((table, row, column))
