"""Weights reach the CPU backend without a second host copy (`weights.host_arrays`)."""
import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from benchmarks.decode_prefix import random_params
from prefix_jax.models import build_model
from prefix_jax.weights.hf import read_safetensors
from prefix_jax.weights.host_arrays import ALIGNMENT, aligned_empty, aligned_float32, is_aligned
from tiny import CONFIGS


@pytest.mark.parametrize("shape", [(3,), (7, 5), (2, 3, 11)])
def test_aligned_arrays(shape):
  x = aligned_empty(shape)
  assert x.shape == shape and x.dtype == np.float32 and x.flags.c_contiguous
  assert x.ctypes.data % ALIGNMENT == 0
  half = np.arange(np.prod(shape), dtype=np.float16).reshape(shape)
  y = aligned_float32(half)
  assert is_aligned(y) and y.dtype == np.float32
  np.testing.assert_array_equal(y, half.astype(np.float32))
  assert aligned_float32(y) is y  # already aligned float32: no copy
  col = aligned_float32(np.ones((4, 6), np.float32)[:, 1])  # a strided view is copied
  assert is_aligned(col) and col.shape == (4,)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="host buffer aliasing is CPU-only")
def test_device_put_adopts_aligned_buffers():
  x = aligned_float32(np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32))
  assert jax.device_put(x).unsafe_buffer_pointer() == x.ctypes.data


def test_read_safetensors_gives_aligned_float32_with_the_values(tmp_path):
  rng = np.random.default_rng(1)
  tensors = {"a": rng.standard_normal((5, 7)).astype(np.float32),
             "b": rng.standard_normal((3,)).astype(np.float16),
             "c": rng.standard_normal((2, 2, 9)).astype(np.float32)}
  save_file(tensors, str(tmp_path / "model.safetensors"))
  read = read_safetensors(tmp_path)
  assert sorted(read) == ["a", "b", "c"]
  for name, value in read.items():
    assert is_aligned(value) and value.dtype == np.float32
    np.testing.assert_array_equal(value, tensors[name].astype(np.float32))


def test_random_params_draws_the_documented_stream():
  model = build_model(CONFIGS["gpt2"])
  params = random_params(model, seed=3)
  rng = np.random.default_rng(3)
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    if "scale" in jax.tree_util.keystr(path):
      np.testing.assert_array_equal(leaf, np.ones(leaf.shape, np.float32))
    else:
      expected = rng.standard_normal(leaf.shape, np.float32) * np.float32(0.02)
      np.testing.assert_array_equal(leaf, expected)
