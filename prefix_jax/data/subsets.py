"""Fixed evaluation subsets where a full test split is too slow to decode.

`spread(items, n, strata)`: n items, the strata in equal shares (WebNLG: seen and unseen
categories), each share evenly spaced over its stratum's items (E2E: distinct MRs across the
whole file, not its first n), returned in file order. Deterministic: no seed, no scores.
"""
from __future__ import annotations

from typing import Sequence


def evenly_spaced(count: int, k: int) -> list[int]:
  """k indices of range(count), evenly spaced (the middle of k equal parts)."""
  k = min(k, count)
  return [int((2 * i + 1) * count // (2 * k)) for i in range(k)]


def spread(items: Sequence, n: int, strata: Sequence | None = None) -> list:
  """`n` items (all if n <= 0 or n >= len): equal shares per stratum label (a stratum with
  fewer items than its share gives the rest to the larger ones; an odd remainder goes to the
  larger strata), each share evenly spaced within its stratum; in the items' order."""
  if n <= 0 or n >= len(items):
    return list(items)
  labels = list(strata) if strata is not None else [None] * len(items)
  if len(labels) != len(items):
    raise ValueError(f"{len(labels)} strata labels for {len(items)} items")
  members: dict = {}
  for i, label in enumerate(labels):
    members.setdefault(label, []).append(i)
  shares, left = {}, n
  for j, (label, idx) in enumerate(sorted(members.items(), key=lambda kv: len(kv[1]))):
    shares[label] = min(len(idx), left // (len(members) - j) + (left % (len(members) - j) > 0))
    left -= shares[label]
  chosen = sorted(idx[p] for label, idx in members.items()
                  for p in evenly_spaced(len(idx), shares[label]))
  return [items[i] for i in chosen]
