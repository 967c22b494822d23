"""Faults during a run: NaN, a full disk, a truncated checkpoint, SIGINT / SIGTERM at start-up,
during compilation and mid-run. Each run then resumes and finishes bitwise equal to an
uninterrupted run (the resumes run in-process; the signals go to a subprocess)."""
import errno
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.errors import CheckpointError, TrainingDiverged
from prefix_jax.train.export import load_prefix
from prefix_jax.train.loop import Hooks, train_and_evaluate
from conftest import with_xla_flags
from run_tiny import tiny_config

ROOT = Path(__file__).resolve().parent.parent
E2E = str(ROOT / "configs" / "e2e.py")
RUNNER = str(Path(__file__).resolve().parent / "run_tiny.py")
STEPS = {"train.num_steps": 4, "train.checkpoint_every": 1}


def _config(**kw):
  return tiny_config(E2E, **{**STEPS, **kw})


def _prefix(wd):
  _, params, _ = load_prefix(Path(wd) / "prefix.safetensors")
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]


def _steps(wd):
  return sorted(int(p.name) for p in (Path(wd) / "checkpoints").iterdir() if p.name.isdigit())


def _assert_same_prefix(a, b):
  for x, y in zip(_prefix(a), _prefix(b), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared_dir):
  wd = tmp_path_factory.mktemp("reference")
  assert train_and_evaluate(_config(), wd)["status"] == "completed"
  return wd


@pytest.mark.parametrize("bad_step", [1, 3])
def test_non_finite_parameters_are_never_saved_and_the_run_resumes(reference, tmp_path, bad_step):
  """The update of `bad_step` makes the parameters NaN while its loss is still finite (what a
  huge learning rate does): the checkpoint of that step is refused, the earlier ones kept."""
  wd = tmp_path / "nan"

  def blow_up(step, state):
    if step != bad_step:
      return state
    return state.replace(trainable=jax.tree_util.tree_map(lambda x: x * jnp.nan, state.trainable))

  with pytest.raises(TrainingDiverged, match=f"parameters are not finite after step {bad_step}"):
    train_and_evaluate(_config(), wd, hooks=Hooks(after_step=blow_up))
  assert _steps(wd) == list(range(1, bad_step))[-2:]
  assert train_and_evaluate(_config(), wd)["status"] == "completed"
  _assert_same_prefix(reference, wd)


def test_disk_full_during_a_save_keeps_earlier_checkpoints_and_no_temporary(
    reference, tmp_path, monkeypatch, caplog):
  from orbax.checkpoint._src.handlers import json_checkpoint_handler as jh
  wd = tmp_path / "full"
  real = jh.JsonCheckpointHandler._save_fn
  calls = []

  async def full_disk(self, x, directory):
    calls.append(directory)
    if x.get("step") == 3:
      raise OSError(errno.ENOSPC, "No space left on device")
    return await real(self, x, directory)

  monkeypatch.setattr(jh.JsonCheckpointHandler, "_save_fn", full_disk)
  with pytest.raises(CheckpointError, match="cannot save checkpoint step 3 .*No space left on "
                     r"device.*earlier checkpoints \[1, 2\] are kept"):
    train_and_evaluate(_config(), wd)
  assert calls and not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback
  monkeypatch.undo()
  assert _steps(wd) == [1, 2]
  assert not [p for p in (wd / "checkpoints").iterdir() if "tmp" in p.name]
  assert train_and_evaluate(_config(), wd)["status"] == "completed"
  _assert_same_prefix(reference, wd)


def test_truncated_latest_checkpoint_falls_back_to_the_one_before(reference, tmp_path, capfd):
  wd = tmp_path / "trunc"
  train_and_evaluate(_config(), wd)
  assert _steps(wd) == [3, 4]
  for f in (wd / "checkpoints" / "4").rglob("*"):
    if f.is_file() and f.stat().st_size > 0:
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
  capfd.readouterr()
  assert train_and_evaluate(_config(), wd)["status"] == "completed"
  err = capfd.readouterr().err
  assert "warning: checkpoint step 4" in err and "resuming from step 3" in err, err
  assert list((wd / "checkpoints_unreadable").iterdir())  # set aside, not deleted
  _assert_same_prefix(reference, wd)


def test_every_checkpoint_unreadable_is_one_line_and_nothing_moves(tmp_path):
  wd = tmp_path / "allbad"
  train_and_evaluate(_config(**{"train.num_steps": 2}), wd)
  for f in (wd / "checkpoints").rglob("*"):
    if f.is_file():
      f.write_bytes(b"")
  recorded = (wd / "config.json").read_text()
  with pytest.raises(CheckpointError, match="no readable checkpoint in"):
    train_and_evaluate(_config(**{"train.num_steps": 2, "optim.learning_rate": 0.5}), wd)
  assert _steps(wd) == [1, 2] and not (wd / "checkpoints_unreadable").exists()
  assert (wd / "config.json").read_text() == recorded  # the failed resume changed nothing


def _signal_run(wd, **env):
  proc = subprocess.run([sys.executable, RUNNER, E2E, str(wd), "train.num_steps=4",
                         "train.checkpoint_every=1000"], env=with_xla_flags(env), cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
  return proc


@pytest.mark.parametrize("sig,env,code,saved", [
    (signal.SIGTERM, {"PREFIX_JAX_TEST_TERM_AT_PHASE": "set-up"}, 0, []),
    # 0.3 s into compiling step 1: compiled here, not loaded from the session's cache
    (signal.SIGTERM, {"PREFIX_JAX_TEST_TERM_BEFORE": "1,0.3",
                      "JAX_ENABLE_COMPILATION_CACHE": "false"}, 0, [1]),
    (signal.SIGINT, {"PREFIX_JAX_TEST_INT_AT_PHASE": "set-up"}, 130, []),
    (signal.SIGINT, {"PREFIX_JAX_TEST_INT_BEFORE": "1,0.3",
                     "JAX_ENABLE_COMPILATION_CACHE": "false"}, 130, [1]),
    (signal.SIGINT, {"PREFIX_JAX_TEST_INT_AT": "2"}, 130, [2]),
], ids=["sigterm-at-start-up", "sigterm-during-compilation", "sigint-at-start-up",
        "sigint-during-compilation", "sigint-mid-run"])
def test_signal_saves_the_current_step_and_the_run_resumes_equal(reference, tmp_path, sig, env,
                                                                  code, saved):
  wd = tmp_path / "sig"
  proc = _signal_run(wd, **env)
  assert proc.returncode == code, proc.stderr
  assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
  if code == 130:
    assert proc.stderr.strip().splitlines()[-1].startswith("error: interrupted at step")
  assert (_steps(wd) if (wd / "checkpoints").exists() else []) == saved, proc.stdout
  status = json.loads((wd / "summary.json").read_text())["status"] if saved else None
  assert status in (None, "interrupted" if sig == signal.SIGINT else "preempted")
  assert train_and_evaluate(_config(), wd)["status"] == "completed"
  _assert_same_prefix(reference, wd)
  rows = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines()]
  times = [r["time"] for r in rows]
  assert times == sorted(times), times  # time continues across the resume


def test_ctrl_c_during_the_imports_of_the_command_is_not_lost(tmp_path):
  """`python -m prefix_jax.main` installs its handlers before importing JAX: Ctrl-C a second
  into start-up stops the run cleanly (exit 130, one line), and nothing was trained."""
  import time
  wd = tmp_path / "w"
  proc = subprocess.Popen(
      [sys.executable, "-m", "prefix_jax.main", f"--config={E2E}:model=tiny-llama",
       f"--workdir={wd}", "--config.train.num_steps=2", "--config.train.batch_size=4",
       "--config.data.max_source_len=24"], cwd=ROOT, env=with_xla_flags({}),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  time.sleep(1.0)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 130, err
  assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(
      "error: interrupted at step 0/2"), err
  assert not (wd / "checkpoints").exists() or not any((wd / "checkpoints").iterdir())
