"""Pytree comparisons that check the structure first: zipping two leaf lists would silently
truncate to the shorter one (a missing or extra leaf would pass)."""
import jax
import numpy as np


def assert_trees_close(a, b, atol=0.0, rtol=0.0):
  """Same tree structure, and every pair of leaves within atol + rtol * |b| (0: bitwise)."""
  sa, sb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
  assert sa == sb, f"tree structures differ:\n{sa}\n{sb}"
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_leaves(b)):
    name = jax.tree_util.keystr(path)
    if atol == 0 and rtol == 0:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
    else:
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol, err_msg=name)


def max_abs_diff(a, b) -> float:
  """Largest |a - b| over all leaves (same structure required)."""
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
             for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
