"""The named prefixes a server or a batch run holds, stacked into one bank.

Each prefix file (`train/export.py`: already folded, so no MLP runs at inference) is checked
against the backbone when it is loaded, converted once to its keys/values (hidden prefixes go
through each layer's W_k/W_v here, never per request), and stacked with the others by
`prefixes.pad_and_stack`: a batch gathers one row of the bank per request, whatever its task.
The backbone itself is served under its name: a last bank row with no real slot (mask all
False), so requests without a prefix join the same batches and decode as with no prefix.
"""
from __future__ import annotations

import dataclasses
import threading
from types import MappingProxyType

import jax
import jax.numpy as jnp

from prefix_jax.decode.cache import prefix_kv
from prefix_jax.prefixes import Prefix, materialize, pad_and_stack
from prefix_jax.serving.errors import PrefixLoadError
from prefix_jax.train.export import PrefixFileError, load_prefix


@dataclasses.dataclass(frozen=True)
class BankSnapshot:
  """An immutable view of the bank: a batch decodes against one snapshot from start to end.

  stack: the bank, kv form [N + 1, L, Lp, Hkv, D] or prompt form [N + 1, Lp, H], with mask
    [N + 1, Lp]; row N (no real slot) is the bare backbone. None while no prefix is loaded.
  index: name -> row (the backbone's name, if served -> row N). lengths: name -> real slots.
  """
  stack: Prefix | None
  index: MappingProxyType
  lengths: MappingProxyType

  @property
  def length(self) -> int:
    """Slots per row of the stacked bank (the longest prefix)."""
    return 0 if self.stack is None else self.stack.length

  def rows(self, names: list[str]) -> Prefix | None:
    """The per-example prefix [B, ...] of `names` (each must be in `index`); None while no
    prefix is loaded (every name is then the backbone's)."""
    if self.stack is None:
      return None
    return self.stack.gather(jnp.asarray([self.index[n] for n in names], jnp.int32))


def _form(prefix: Prefix) -> str:
  return "prompt" if prefix.form == "prompt" else "kv"


def _with_empty_row(stack: Prefix) -> Prefix:
  """The bank [N, ...] plus a row of zeros whose mask is all False: the bare backbone (the
  token positions count only real slots, so it decodes as with no prefix)."""
  return jax.tree_util.tree_map(lambda x: jnp.concatenate([x, jnp.zeros_like(x[:1])]), stack)


class PrefixBank:
  """Named prefixes for one backbone. `add`/`remove` are thread-safe; readers take
  `snapshot()`, which never changes under them. `backbone_name` (if given) serves the bare
  backbone under that name."""

  def __init__(self, model, backbone: dict, backbone_name: str | None = None):
    self.model, self.backbone, self.backbone_name = model, backbone, backbone_name
    self._prefixes: dict[str, Prefix] = {}
    self._lock = threading.Lock()
    self._restack()

  def snapshot(self) -> BankSnapshot:
    return self._snapshot

  def names(self) -> list[str]:
    """The loaded prefixes."""
    return [n for n in self._snapshot.index if n != self.backbone_name]

  def models(self) -> list[str]:
    """What a request may name: the backbone (if served), then the prefixes."""
    return [self.backbone_name] * (self.backbone_name is not None) + self.names()

  def load(self, path) -> Prefix:
    """The prefix of one exported file, in the form a batch consumes (kv or prompt)."""
    cfg = self.model.cfg
    try:
      spec, params, _ = load_prefix(path, cfg)
    except (PrefixFileError, ValueError, TypeError, KeyError) as e:  # TypeError: bad spec keys
      raise PrefixLoadError(str(e).splitlines()[0]) from None
    if spec.num_tasks:
      raise PrefixLoadError(f"{path}: holds a bank of {spec.num_tasks} prefixes; export each "
                            "task's prefix to its own file")
    if spec.placement != "prefix":
      raise PrefixLoadError(f"{path}: placement '{spec.placement}' is not served (only "
                            "'prefix')")
    prefix = materialize(spec, cfg, params)
    return prefix if prefix.form == "prompt" else prefix_kv(self.model, self.backbone, prefix)

  def add(self, name: str, path) -> int:
    """Loads `path` as `name` (replacing a prefix of that name); returns its slot count."""
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
      raise PrefixLoadError(f"prefix name {name!r} must be letters, digits, '-', '_' or '.'")
    if name == self.backbone_name:
      raise PrefixLoadError(f"prefix name {name!r} is the backbone's name")
    prefix = self.load(path)
    with self._lock:
      others = {_form(p) for n, p in self._prefixes.items() if n != name}
      if others and others != {_form(prefix)}:
        raise PrefixLoadError(f"{path}: a {prefix.form} prefix cannot share a bank with "
                              f"{others.pop()} prefixes")
      self._prefixes[name] = prefix
      self._restack()
    return prefix.length

  def remove(self, name: str) -> bool:
    """Drops `name`; False if there was no such prefix."""
    with self._lock:
      if self._prefixes.pop(name, None) is None:
        return False
      self._restack()
      return True

  def _restack(self) -> None:
    names = sorted(self._prefixes)
    stack = _with_empty_row(pad_and_stack([self._prefixes[n] for n in names])) if names else None
    index = {n: i for i, n in enumerate(names)}
    lengths = {n: self._prefixes[n].length for n in names}
    if self.backbone_name is not None:
      index[self.backbone_name], lengths[self.backbone_name] = len(names), 0
    self._snapshot = BankSnapshot(stack, MappingProxyType(index), MappingProxyType(lengths))
