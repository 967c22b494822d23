"""Finding the blocks of any backbone's parameter tree (the places methods act)."""
from __future__ import annotations

import re


_INDEX = re.compile(r"_(\d+)$")


def blocks(backbone: dict) -> list[tuple[str, ...]]:
  """Paths of the transformer blocks (subtrees with `attn` and `mlp`), each stack in layer
  order: ('h_0',), ... for GPT-2; ('encoder', 'layers_0'), ... for BART."""
  found = []

  def walk(node, path):
    if not isinstance(node, dict):
      return
    if "attn" in node and "mlp" in node:
      found.append(path)
      return
    for k, v in node.items():
      walk(v, (*path, k))

  walk(backbone, ())
  key = lambda p: (p[:-1], int(_INDEX.search(p[-1]).group(1)))
  return sorted(found, key=key)


def stacks(backbone: dict) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
  """Block paths grouped by stack (BART: encoder and decoder), each in layer order."""
  out: dict[tuple, list] = {}
  for path in blocks(backbone):
    out.setdefault(path[:-1], []).append(path)
  return out


def top_blocks(backbone: dict, k: int) -> list[tuple[str, ...]]:
  """The top k blocks of every stack (BART: of the encoder and of the decoder)."""
  return [p for paths in stacks(backbone).values() for p in paths[-k:]]


def node(tree: dict, path: tuple[str, ...]):
  for p in path:
    tree = tree[p]
  return tree


def nest(items: dict[tuple[str, ...], object]) -> dict:
  """{path tuple: subtree} -> nested dict."""
  out: dict = {}
  for path, value in items.items():
    d = out
    for p in path[:-1]:
      d = d.setdefault(p, {})
    d[path[-1]] = value
  return out

