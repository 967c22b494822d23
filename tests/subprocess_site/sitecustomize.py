"""Start-up of every Python subprocess that a test starts (tests/conftest.py puts this folder on
PYTHONPATH): torch cannot be imported there, as on a user's machine without the test extras.

The package never imports torch (its logger imports tensorboardX without it:
tests/test_logger.py), so a command that came to need torch would fail here as it would there.
The test session's own processes (pytest and its xdist workers, which compare with torch
references) start before any test runs, so they import torch as usual. A subprocess that needs
torch (the benchmarks' torch references) is started with PREFIX_JAX_TEST_TORCH=1.
"""
import os
import sys


class _NoTorch:
  """A meta path finder that answers for torch as an interpreter without it would."""

  @staticmethod
  def find_spec(name, path=None, target=None):
    del path, target
    if name == "torch" or name.startswith("torch."):
      raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return None


if "PYTEST_CURRENT_TEST" in os.environ and not os.environ.get("PREFIX_JAX_TEST_TORCH"):
  sys.meta_path.insert(0, _NoTorch())
