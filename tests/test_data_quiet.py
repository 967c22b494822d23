"""Preparing local data says nothing about downloads or splits the run does not use."""
import subprocess
import sys
from pathlib import Path

from conftest import with_xla_flags

ROOT = Path(__file__).resolve().parent.parent


def test_preparing_local_data_prints_no_download_or_network_message(tmp_path, shared_dir):
  proc = subprocess.run(
      [sys.executable, "-c", "from prefix_jax.data import datasets; datasets.prepare('e2e')"],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env=with_xla_flags({"PREFIX_JAX_DATA_DIR": str(tmp_path / "tfds"),
                          "PREFIX_JAX_SHARED": str(shared_dir)}))
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout + proc.stderr
  assert (tmp_path / "tfds").exists()  # it really prepared
  for words in ("Downloading", "Unknown size", "unavailable", "network"):
    assert words not in out, out[-2000:]
