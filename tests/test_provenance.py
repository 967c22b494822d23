"""provenance.git_commit: the commit a result ran on, '+dirty' only when code changed."""
import subprocess

import pytest

from prefix_jax.provenance import git_commit


def _git(repo, *args):
  return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                        text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
  _git(tmp_path, "init", "-q")
  _git(tmp_path, "config", "user.email", "t@t")
  _git(tmp_path, "config", "user.name", "t")
  (tmp_path / "pkg").mkdir()
  (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
  (tmp_path / "results").mkdir()
  (tmp_path / "results" / "table.md").write_text("| a |\n")
  (tmp_path / "README.md").write_text("readme\n")
  _git(tmp_path, "add", ".")
  _git(tmp_path, "commit", "-qm", "first")
  return tmp_path


def test_clean_tree_is_its_head(repo):
  assert git_commit(repo / "pkg") == _git(repo, "rev-parse", "HEAD")


def test_changed_results_leave_the_commit_clean(repo):
  (repo / "results" / "table.md").write_text("| b |\n")
  (repo / "results" / "new.md").write_text("untracked\n")
  assert git_commit(repo / "pkg") == _git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize("where", ["pkg/code.py", "README.md"])
def test_changed_code_anywhere_in_the_tree_is_dirty(repo, where):
  (repo / where).write_text("changed\n")
  assert git_commit(repo / "pkg") == _git(repo, "rev-parse", "HEAD") + "+dirty"


def test_outside_a_repository_is_unknown(tmp_path):
  assert git_commit(tmp_path) == "unknown"
