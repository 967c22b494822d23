"""The paper's claims checked against our own measured tables: for each, whether the saved
raw rows (results/SCALE/TABLE.rows.json) show it, with the numbers. Every number is computed
from those files; README.md's "Reproduction" section is this module's output
(`python -m experiments.paper.claims --readme README.md`), and a test keeps them equal.

Rules fixed before any result: means over every seed and cell (none dropped or chosen);
"≈" means within 2 BLEU; a direction "holds" when the means order as the paper says.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from experiments.paper.render import collect
from experiments.paper.rows import load_rows, rows_file
from experiments.paper.specs import SPECS

BEGIN, END = "<!-- reproduction:begin -->", "<!-- reproduction:end -->"
NEAR_BLEU = 2.0


@dataclasses.dataclass(frozen=True)
class Verdict:
  holds: bool
  numbers: str


@dataclasses.dataclass(frozen=True)
class Claim:
  text: str
  table: str
  check: Callable[[dict], Verdict]   # (row, x, column) -> mean of our values


def _means(results: Path, table: str) -> dict | None:
  if not rows_file(results, table).exists():
    return None
  data = collect(SPECS[table], load_rows(results, table), {})
  means = {k: float(np.mean(v)) for k, v in data["values"].items()}
  return {**means, **{(row, x, "% params"): s for (row, x), s in data["share"].items()}}


def _get(m: dict, row: str, col: str, x=None) -> float:
  if (row, x, col) not in m:
    raise KeyError(f"{row} / {col}" + (f" at {x}" if x is not None else ""))
  return m[(row, x, col)]


def _prefix_near_ft(m) -> Verdict:
  p, f = _get(m, "Prefix 0.1%", "E2E BLEU"), _get(m, "FT", "E2E BLEU")
  share = _get(m, "Prefix 0.1%", "% params")
  return Verdict(p >= f - NEAR_BLEU, f"E2E BLEU: Prefix {p:.1f} vs FT {f:.1f}; the prefix "
                                     f"trains {share:.3f}% of the backbone's parameters")


def _prefix_beats_ft_unseen(m) -> Verdict:
  p, f = _get(m, "Prefix 0.1%", "WebNLG BLEU U"), _get(m, "FT", "WebNLG BLEU U")
  return Verdict(p > f, f"WebNLG unseen BLEU: Prefix {p:.1f} vs FT {f:.1f}")


def _emb_infix_prefix(m) -> Verdict:
  e, i, p = (_get(m, r, "E2E BLEU") for r in ("EMB-10", "INFIX-10", "PREFIX"))
  others = ", ".join(f"{r} {_get(m, r, 'E2E BLEU'):.1f}"
                     for r in ("EMB-1", "EMB-20", "INFIX-1", "INFIX-20"))
  return Verdict(e < i < p, f"E2E BLEU at length 10: EMB {e:.1f}, INFIX {i:.1f}, "
                            f"PREFIX {p:.1f} (also {others})")


def _prefix_beats_ft_lowdata(m) -> Verdict:
  sizes = sorted({x for (_, x, _) in m if x is not None})
  wins = [(n, _get(m, "Prefix", "E2E BLEU", n), _get(m, "FT", "E2E BLEU", n)) for n in sizes]
  shown = "; ".join(f"n={n}: Prefix {p:.1f} vs FT {f:.1f}" for n, p, f in wins)
  better = sum(p > f for _, p, f in wins)
  return Verdict(better > len(wins) / 2, f"E2E BLEU, mean of seeds, Prefix higher at {better} "
                                         f"of {len(wins)} sizes ({shown})")


def _interior_length(m) -> Verdict:
  lengths = sorted({x for (_, x, _) in m if x is not None})
  bleu = [_get(m, "Prefix", "E2E BLEU", n) for n in lengths]
  best = lengths[int(np.argmax(bleu))]
  shown = ", ".join(f"{n}: {b:.1f}" for n, b in zip(lengths, bleu))
  return Verdict(best not in (lengths[0], lengths[-1]),
                 f"E2E BLEU by length ({shown}); best at {best}")


def _words_help(m) -> Verdict:
  rows = [r.label for r in SPECS["figure5"].rows]
  words = [_get(m, r, "E2E BLEU") for r in rows[1:]]
  rand = _get(m, "random", "E2E BLEU")
  return Verdict(float(np.mean(words)) > rand,
                 f"E2E BLEU, low data: random init {rand:.1f} vs word inits "
                 f"{np.mean(words):.1f} on average ({', '.join(f'{b:.1f}' for b in words)})")


CLAIMS = (
    Claim("Prefix-tuning ≈ fine-tuning on E2E with about 0.1% of the parameters", "table1",
          _prefix_near_ft),
    Claim("Prefix-tuning ≫ fine-tuning on WebNLG's unseen categories", "table1",
          _prefix_beats_ft_unseen),
    Claim("EMB < INFIX < PREFIX (Table 5)", "table5", _emb_infix_prefix),
    Claim("Prefix-tuning > fine-tuning in low data (Figure 3)", "figure3",
          _prefix_beats_ft_lowdata),
    Claim("Prefix length has an interior optimum (Figure 4)", "figure4", _interior_length),
    Claim("Initializing with real words helps in low data (Figure 5)", "figure5", _words_help),
)


def verdict_line(claim: Claim, results: Path) -> str:
  means = _means(results, claim.table)
  if means is None:
    return f"- **{claim.text}**: not measured yet ({claim.table} has no results)."
  try:
    v = claim.check(means)
  except KeyError as e:
    return f"- **{claim.text}**: not measured yet ({claim.table} lacks {e.args[0]})."
  word = "shows it" if v.holds else "does not show it"
  return f"- **{claim.text}**: our `{results.name}` run {word}. {v.numbers}."


def section(results: Path) -> str:
  lines = [verdict_line(c, results) for c in CLAIMS]
  return "\n".join([BEGIN, *lines, END])


def replace_section(text: str, new: str) -> str:
  pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
  if not pattern.search(text):
    raise ValueError(f"no {BEGIN} ... {END} section")
  return pattern.sub(lambda _: new, text)


def readme_section(readme: Path) -> str:
  m = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), Path(readme).read_text(), re.S)
  return m.group(0) if m else ""


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m experiments.paper.claims", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--results", default="results/mini")
  p.add_argument("--readme", default="", help="rewrite this file's reproduction section")
  args = p.parse_args(argv)
  text = section(Path(args.results))
  if args.readme:
    path = Path(args.readme)
    path.write_text(replace_section(path.read_text(), text))
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
