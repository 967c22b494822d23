"""The trainer over several devices and processes (data parallelism, FSDP, packed rows on two
devices): each run is a subprocess with its own device count, compared with a run on fewer."""
import socket

import pytest

import probe
from prefix_jax.train.loop import train_and_evaluate
from run_tiny import tiny_config
from trainer_runs import E2E, prefix_arrays, run_subprocess
from trees import assert_trees_close, max_abs_diff


def _batch_of_8(wd, devices: int, *args):
  """A 3-step run with batches of 8 rows over `devices` devices: (its output, its prefix)."""
  env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  proc = run_subprocess(wd, "train.num_steps=3", "train.batch_size=8", *args, env=env)
  out = proc.communicate(timeout=300)[0].decode()
  assert proc.returncode == 0, out
  return out, prefix_arrays(wd)


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory, shared_dir):
  """The replicated 8-device run, which both the 1-device and the FSDP runs must equal."""
  return _batch_of_8(tmp_path_factory.mktemp("dev8"), 8)


def _assert_rows_split(out, devices: int):
  """Inside the run: each step's batch of 8 rows was split over `devices` devices."""
  seen = probe.parse(out)
  assert (seen["batch_devices"], seen["rows_per_device"], seen["steps"]) == (
      devices, 8 // devices, 3), out


def test_eight_devices_equal_one_device(eight_devices, tmp_path):
  out8, prefix8 = eight_devices
  _assert_rows_split(out8, 8)  # before the 1-device run: a mutant that breaks it fails sooner
  out1, prefix1 = _batch_of_8(tmp_path / "dev1", 1)
  _assert_rows_split(out1, 1)
  assert_trees_close(prefix1, prefix8, atol=1e-5)


def test_packed_rows_train_the_same_prefix_as_padded_rows(tmp_path, shared_dir):
  """Packing (2 devices, rows rounded to them) changes the layout of a step, not its examples:
  the trained prefix equals the padded-rows run's."""
  padded = tmp_path / "padded"
  train_and_evaluate(tiny_config(E2E, **{"train.num_steps": 3}), padded)
  wd = tmp_path / "packed"
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  proc = run_subprocess(wd, "train.num_steps=3", "data.pack_length=64", env=env)
  out = proc.communicate(timeout=300)[0].decode()
  assert proc.returncode == 0, out
  a, b = prefix_arrays(padded), prefix_arrays(wd)
  # training moved the prefix, so equality below is informative
  assert max_abs_diff(a, prefix_arrays(padded, "prefix_init.safetensors")) > 1e-4
  assert_trees_close(a, b, atol=2e-5)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_equal_one_process_with_two_devices(tmp_path, shared_dir):
  """Multi-host data parallelism: 2 processes x 1 CPU device (gloo collectives on 127.0.0.1)
  train the same prefix as 1 process x 2 devices, for the same global batch."""
  two = tmp_path / "two"
  port = _free_port()
  procs = [run_subprocess(two, "train.num_steps=3", "distributed.num_processes=2",
                          f"distributed.process_id={i}",
                          f'distributed.coordinator_address="127.0.0.1:{port}"',
                          'distributed.cpu_collectives="gloo"',
                          env={"XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
           for i in range(2)]
  outs = [p.communicate(timeout=300)[0].decode() for p in procs]
  assert all(p.returncode == 0 for p in procs), outs
  assert all("processes=2 devices=2" in o for o in outs), outs
  # Inside each process: the global batch of 4 rows was split over both processes' devices.
  for o in outs:
    seen = probe.parse(o)
    assert (seen["batch_devices"], seen["batch_rows"], seen["rows_per_device"]) == (2, 4, 2), o
  one = tmp_path / "one"
  proc = run_subprocess(one, "train.num_steps=3",
                        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  out = proc.communicate(timeout=300)[0].decode()
  assert proc.returncode == 0, out
  assert_trees_close(prefix_arrays(one), prefix_arrays(two), atol=1e-5)


def test_fsdp_sharded_backbone_equals_replicated(eight_devices, tmp_path):
  """train.fsdp splits each large frozen weight over the 8 devices: same prefix as replicated."""
  replicated_out, replicated = eight_devices
  sharded_out, sharded = _batch_of_8(tmp_path / "fsdp", 8, "train.fsdp=true")
  # Inside the runs: the largest frozen weight is split 8 ways under fsdp, else replicated.
  assert probe.parse(sharded_out)["largest_weight_split"] == 8, sharded_out
  assert probe.parse(replicated_out)["largest_weight_split"] == 1, replicated_out
  assert_trees_close(replicated, sharded, atol=1e-5)


def test_batch_not_divisible_by_devices_exits_nonzero_with_one_line(tmp_path):
  wd = tmp_path / "w"
  proc = run_subprocess(wd, "train.batch_size=6",
                        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  out = proc.communicate(timeout=300)[0].decode()
  assert proc.returncode == 2, out
  assert "error: batch size 6 is not divisible by the device count 4" in out
  assert not (wd / "checkpoints").exists()
