"""`make mutants`: apply each semantic mutation of mutants/mutations.toml alone to a scratch
copy of the repository, run the tests that guard its promise, and report whether they fail.

    python mutants/run.py [--only NAME ...] [--timeout SECONDS] [--no-write] [--keep]
                          [--baseline]

Results: KILLED (the guarding tests failed, as they must), SURVIVED (they passed: a promise
without a guard), ANCHOR-NOT-FOUND / ANCHOR-AMBIGUOUS (the code the entry mutates has moved:
fix the entry), TIMEOUT, ERROR (pytest could not run the selection, selected nothing, or
skipped some of it). The table is printed and, for a full run, written to docs/mutants.md.
Exit status 0 only if every mutant was killed.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "mutants" / "mutations.toml"
DOC = ROOT / "docs" / "mutants.md"
FIELDS = ("name", "promise", "file", "find", "replace", "test", "k")


@dataclasses.dataclass(frozen=True)
class Mutant:
  name: str
  promise: str
  file: str
  find: str
  replace: str
  test: str
  k: str


def load(path: Path = LIST) -> list[Mutant]:
  """The mutation list; raises ValueError naming an entry with missing/unknown fields."""
  entries = tomllib.loads(path.read_text())["mutant"]
  out = []
  for i, e in enumerate(entries):
    if set(e) != set(FIELDS):
      raise ValueError(f"{path}: entry {i} ({e.get('name')!r}) has fields {sorted(e)}, "
                       f"expected {sorted(FIELDS)}")
    out.append(Mutant(**e))
  names = [m.name for m in out]
  if len(set(names)) != len(names):
    raise ValueError(f"{path}: duplicate names {sorted(n for n in names if names.count(n) > 1)}")
  return out


def anchor_count(m: Mutant, root: Path = ROOT) -> int:
  path = root / m.file
  return path.read_text().count(m.find) if path.exists() else 0


def scratch_copy(dest: Path) -> None:
  """The repository's files as git sees them (tracked, plus untracked files not ignored)."""
  files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
  for rel in filter(None, files):
    src = ROOT / rel
    if src.is_file():
      (dest / rel).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(src, dest / rel)


def _env(copy: Path) -> dict:
  """The copy's package first on the path (before an installed checkout); data read from
  where the original reads it (`prefix_jax.paths.shared_dir`: the copy has no ../shared)."""
  shared = os.environ.get("PREFIX_JAX_SHARED", str(ROOT.parent / "shared"))
  return dict(os.environ, PYTHONPATH=str(copy), PREFIX_JAX_SHARED=str(Path(shared).resolve()),
              PYTHONDONTWRITEBYTECODE="1")


def _outcome(rc: int, out: str) -> str:
  last = out.strip().splitlines()[-1] if out.strip() else ""
  if rc == 1 and re.search(r"\d+ failed", last):
    return "KILLED"
  if rc == 1 and re.search(r"\d+ error", last):  # a fixture of the guarding test failed
    return "KILLED (setup error)"
  if rc == 0:
    return "ERROR (skipped)" if "skipped" in last else "SURVIVED"
  return f"ERROR (pytest exit {rc})"


def run_one(m: Mutant, timeout: int, keep: bool = False,
            baseline: bool = False) -> tuple[str, float, str]:
  """(result, seconds, pytest output tail) of one mutant in its own scratch copy
  (`baseline`: the same selection on the unmutated copy, which must pass)."""
  copy = Path(tempfile.mkdtemp(prefix=f"mutant-{m.name}-"))
  try:
    scratch_copy(copy)
    n = anchor_count(m, copy)
    if n != 1:
      return ("ANCHOR-NOT-FOUND" if n == 0 else f"ANCHOR-AMBIGUOUS ({n}x)"), 0.0, ""
    target = copy / m.file
    if not baseline:
      target.write_text(target.read_text().replace(m.find, m.replace))
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfEs",
           m.test, "-k", m.k]
    start = time.time()
    try:
      proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
      return "TIMEOUT", time.time() - start, ""
    # pytest's report (stdout) last: the failing tests' summary lines are at its end.
    out = proc.stderr[-1000:] + proc.stdout[-3000:]
    return _outcome(proc.returncode, proc.stdout), time.time() - start, out
  finally:
    if keep:
      print(f"  kept {copy}")
    else:
      shutil.rmtree(copy, ignore_errors=True)


def table(rows: list[tuple[Mutant, str, float]]) -> str:
  lines = ["| mutation | promise | file | guarding test | result | seconds |",
           "|---|---|---|---|---|---|"]
  for m, result, secs in rows:
    lines.append(f"| `{m.name}` | {m.promise} | `{m.file}` | `{m.test} -k \"{m.k}\"` | "
                 f"{result} | {secs:.0f} |")
  return "\n".join(lines)


def _commit() -> str:
  proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                        text=True)
  return proc.stdout.strip() or "unknown"


def write_doc(rows, total: float) -> None:
  """Replaces the results section of docs/mutants.md (the text above it is kept)."""
  marker = "## Last full run"
  head = DOC.read_text().split(marker)[0].rstrip() + "\n\n" if DOC.exists() else ""
  killed = sum(r.startswith("KILLED") for _, r, _ in rows)
  when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  DOC.parent.mkdir(exist_ok=True)
  DOC.write_text(f"{head}{marker}\n\n{when}, commit {_commit()}, {os.cpu_count()} CPU cores: "
                 f"{killed} of {len(rows)} mutants killed in {total / 60:.1f} minutes.\n\n"
                 f"{table(rows)}\n")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
  ap.add_argument("--timeout", type=int, default=600, help="seconds per mutant")
  ap.add_argument("--no-write", action="store_true", help="do not update docs/mutants.md")
  ap.add_argument("--keep", action="store_true", help="keep the scratch copies")
  ap.add_argument("--baseline", action="store_true",
                  help="run each selection unmutated (each must pass: PASSES); no docs")
  args = ap.parse_args(argv)
  mutants = load()
  if args.only:
    unknown = set(args.only) - {m.name for m in mutants}
    if unknown:
      print(f"error: unknown mutant(s) {sorted(unknown)}", file=sys.stderr)
      return 2
    mutants = [m for m in mutants if m.name in args.only]
  moved = [m.name for m in mutants if anchor_count(m) != 1]
  if moved:  # loud, before spending time: the list needs updating
    print(f"WARNING: {len(moved)} anchor(s) not found exactly once in the code, fix "
          f"{LIST.relative_to(ROOT)}: {moved}", file=sys.stderr)
  rows, start = [], time.time()
  for i, m in enumerate(mutants, 1):
    result, secs, tail = run_one(m, args.timeout, args.keep, args.baseline)
    if args.baseline and result == "SURVIVED":
      result = "PASSES"  # unmutated: the selection must pass
    print(f"[{i}/{len(mutants)}] {m.name}: {result} ({secs:.0f} s)", flush=True)
    failed = re.findall(r"^(?:FAILED|ERROR) .*$", tail, re.M)
    if result.startswith("KILLED") and failed:
      print(f"  {failed[0][:300]}", flush=True)  # what caught it
    if not result.startswith(("KILLED", "PASSES")) and tail:
      print("  " + tail.strip().replace("\n", "\n  "), flush=True)
    rows.append((m, result, secs))
  total = time.time() - start
  print(table(rows))
  killed = sum(r.startswith("KILLED") for _, r, _ in rows)
  print(f"{killed} of {len(rows)} killed in {total / 60:.1f} minutes")
  if args.baseline:
    return 0 if all(r == "PASSES" for _, r, _ in rows) else 1
  if not args.no_write and not args.only:
    write_doc(rows, total)
  return 0 if killed == len(rows) else 1


if __name__ == "__main__":
  sys.exit(main())
