"""Host (numpy) weight arrays that the CPU backend can adopt without copying them.

`jax.device_put` of a numpy array on the CPU aliases its buffer when the data is 64-byte
aligned and copies it otherwise; numpy's own allocations are only 16-byte aligned. Weights
built or read into aligned buffers therefore reach the backend with no second copy: the peak
RSS of loading a backbone is the weights once, not twice.
"""
from __future__ import annotations

import numpy as np

ALIGNMENT = 64  # bytes; what XLA:CPU requires to alias a host buffer


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
  """An uninitialized C-contiguous array whose data starts on an `ALIGNMENT` boundary."""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  raw = np.empty(nbytes + ALIGNMENT, np.uint8)
  start = (-raw.ctypes.data) % ALIGNMENT
  return raw[start:start + nbytes].view(dtype).reshape(shape)


def is_aligned(x: np.ndarray) -> bool:
  return x.flags.c_contiguous and x.ctypes.data % ALIGNMENT == 0


def aligned_float32(x) -> np.ndarray:
  """`x` as a C-contiguous, aligned float32 array (`x` itself when it already is one)."""
  x = np.asarray(x)
  if x.dtype == np.float32 and is_aligned(x):
    return x
  out = aligned_empty(x.shape, np.float32)
  out[...] = x
  return out
