"""The mutation list of `make mutants` (mutants/mutations.toml) is well formed and current:
every entry parses, names a test file that exists and test names that its `-k` can select,
and its anchor occurs exactly once in the code (a moved anchor fails here, loudly, so the
list is fixed when the code changes, not when someone runs the slow harness)."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.spec_from_file_location("mutants_run", ROOT / "mutants" / "run.py")
harness = sys.modules["mutants_run"] = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(harness)

MUTANTS = harness.load()


def test_list_covers_the_promises():
  assert len(MUTANTS) >= 20
  assert all(m.find != m.replace for m in MUTANTS)


@pytest.mark.parametrize("m", MUTANTS, ids=[m.name for m in MUTANTS])
def test_entry_names_existing_code_and_tests(m):
  test_file = ROOT / m.test
  assert test_file.is_file(), f"{m.name}: no test file {m.test}"
  names = re.findall(r"^def (test_\w+)", test_file.read_text(), re.M)
  words = [w for w in re.split(r"\s+|\(|\)", m.k) if w and w not in ("and", "or", "not")]
  # Each -k word matches a test name or a parameter id; at least one must be a test name.
  assert any(w in n for w in words for n in names), f"{m.name}: -k {m.k!r} selects no test"
  assert harness.anchor_count(m) == 1, (
      f"{m.name}: anchor not found exactly once in {m.file} (found "
      f"{harness.anchor_count(m)}x); update mutants/mutations.toml:\n{m.find}")
  # The mutated file still parses: a mutant must fail on behaviour, not on a syntax error.
  source = (ROOT / m.file).read_text()
  compile(source.replace(m.find, m.replace), m.file, "exec")


def test_outcome_parsing():
  assert harness._outcome(1, "x\n1 failed, 2 passed in 3s") == "KILLED"
  assert harness._outcome(0, "3 passed in 1s") == "SURVIVED"
  assert harness._outcome(0, "1 passed, 2 skipped in 1s").startswith("ERROR")
  assert harness._outcome(5, "no tests ran in 0.1s").startswith("ERROR")


def test_bad_list_is_rejected(tmp_path):
  bad = tmp_path / "m.toml"
  bad.write_text('[[mutant]]\nname = "x"\nfile = "a.py"\n')
  with pytest.raises(ValueError, match="entry 0 .* has fields"):
    harness.load(bad)
