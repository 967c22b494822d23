"""Low-data subsets as in the paper's study: n examples, 5 sampled subsets x 2 training seeds."""
from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")

LOWDATA_SIZES = (50, 100, 200, 500)
NUM_SUBSETS = 5
TRAIN_SEEDS = (0, 1)


def lowdata_subset(examples: Sequence[T], n: int, subset: int) -> list[T]:
  """`n` examples drawn without replacement, a pure function of (n, subset, len(examples)).

  Returned in the original order, so that the same subset always batches the same way.
  """
  if not 0 < n <= len(examples):
    raise ValueError(f"cannot draw {n} examples from {len(examples)}")
  idx = np.random.default_rng([n, subset]).choice(len(examples), size=n, replace=False)
  return [examples[i] for i in np.sort(idx)]


def lowdata_grid(sizes: Sequence[int] = LOWDATA_SIZES, num_subsets: int = NUM_SUBSETS,
                 train_seeds: Sequence[int] = TRAIN_SEEDS) -> list[dict[str, int]]:
  """Every run of the study: `{'n', 'subset', 'seed'}` (4 x 5 x 2 = 40 by default)."""
  return [{"n": n, "subset": s, "seed": seed}
          for n in sizes for s in range(num_subsets) for seed in train_seeds]
