"""The materialized prefix: the pytree a backbone consumes through `prefix=`.

Exactly one form is set:
  * hidden  [L, Lp, H]            per layer, vectors prepended to that layer's input; the
            or [B, L, Lp, H]      layer's outputs at those positions are discarded.
  * keys/values [L, Lp, Hkv, D]   per layer, past keys/values prepended in attention
            or [B, L, Lp, Hkv, D] (Li & Liang's code; P-tuning v2). Keys are post-RoPE.
  * prompt  [Lp, H] or [B, Lp, H] embeddings at the input only (prompt tuning); they run
            through every layer like tokens.
A leading batch axis B means one prefix per example (e.g. gathered from a bank by task id).
`mask` ([Lp] or [B, Lp], bool, valid slots first) marks real slots when prefixes of different
lengths are padded to a common length; None means all slots are real.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from prefix_jax.errors import UserError

Array = jax.Array

FORMS = ("hidden", "kv", "prompt")


class PrefixShapeError(UserError, ValueError):
  """A prefix whose shapes do not fit the backbone or the batch."""


@struct.dataclass
class Prefix:
  hidden: Array | None = None
  keys: Array | None = None
  values: Array | None = None
  prompt: Array | None = None
  mask: Array | None = None

  @property
  def form(self) -> str:
    if self.hidden is not None:
      return "hidden"
    if self.keys is not None:
      return "kv"
    if self.prompt is not None:
      return "prompt"
    raise PrefixShapeError("Prefix has no arrays set (hidden, keys/values or prompt)")

  @property
  def _main(self) -> Array:
    return {"hidden": self.hidden, "kv": self.keys, "prompt": self.prompt}[self.form]

  @property
  def batched(self) -> bool:
    """Whether the prefix carries a per-example leading axis."""
    shared_ndim = {"hidden": 3, "kv": 4, "prompt": 2}[self.form]
    return self._main.ndim == shared_ndim + 1

  @property
  def length(self) -> int:
    """Lp, the number of prefix slots (padded length if `mask` is set)."""
    return self._main.shape[-2] if self.form in ("hidden", "prompt") else self._main.shape[-3]

  def valid(self, batch: int) -> Array:
    """[B, Lp] bool: which slots are real."""
    if self.mask is None:
      return jnp.ones((batch, self.length), bool)
    mask = self.mask.astype(bool)
    return jnp.broadcast_to(mask, (batch, self.length)) if mask.ndim == 1 else mask

  def layer(self, l: int):
    """The per-layer slice: hidden [B?, Lp, H] or (keys, values) [B?, Lp, Hkv, D]."""
    pick = (lambda x: x[:, l]) if self.batched else (lambda x: x[l])
    if self.form == "hidden":
      return pick(self.hidden)
    if self.form == "kv":
      return pick(self.keys), pick(self.values)
    raise PrefixShapeError("a prompt prefix has no per-layer slices")

  def gather(self, ids: Array) -> "Prefix":
    """Rows `ids` [B] of a bank (leading axis = task): a per-example prefix."""
    return jax.tree_util.tree_map(lambda x: jnp.take(x, ids, axis=0), self)

  def check(self, *, num_layers: int, hidden_size: int, num_kv_heads: int, head_dim: int,
            batch: int | None = None) -> None:
    """Raises PrefixShapeError naming the sizes if this prefix does not fit the backbone."""
    form = self.form
    set_forms = [n for n, x in (("hidden", self.hidden), ("kv", self.keys),
                                ("prompt", self.prompt)) if x is not None]
    if len(set_forms) > 1:
      raise PrefixShapeError(f"Prefix sets several forms at once: {set_forms}")
    b = (batch,) if self.batched else ()
    lp = self.length
    expected = {
        "hidden": {"hidden": (*b, num_layers, lp, hidden_size)},
        "kv": {"keys": (*b, num_layers, lp, num_kv_heads, head_dim),
               "values": (*b, num_layers, lp, num_kv_heads, head_dim)},
        "prompt": {"prompt": (*b, lp, hidden_size)},
    }[form]
    for name, shape in expected.items():
      arr = getattr(self, name)
      if arr is None or tuple(arr.shape) != tuple(shape):
        got = None if arr is None else tuple(arr.shape)
        raise PrefixShapeError(
            f"{form} prefix '{name}' has shape {got}, expected {tuple(shape)} "
            f"(layers={num_layers}, hidden={hidden_size}, kv_heads={num_kv_heads}, "
            f"head_dim={head_dim}, batch={batch})")
    if self.mask is not None and tuple(self.mask.shape) not in ((lp,), (batch, lp)):
      raise PrefixShapeError(f"prefix mask has shape {tuple(self.mask.shape)}, expected "
                             f"({lp},) or ({batch}, {lp})")


def pad_and_stack(prefixes: list[Prefix], length: int | None = None) -> Prefix:
  """Stacks same-form prefixes into a bank [N, ...], right-padding slots to `length`.

  The bank's `mask` [N, Lmax] marks real slots; gathered rows reproduce each prefix exactly.
  """
  if not prefixes:
    raise PrefixShapeError("pad_and_stack needs at least one prefix")
  forms = {p.form for p in prefixes}
  if len(forms) != 1:
    raise PrefixShapeError(f"cannot stack prefixes of different forms {sorted(forms)}")
  if any(p.batched for p in prefixes):
    raise PrefixShapeError("pad_and_stack takes shared (unbatched) prefixes")
  longest = max(p.length for p in prefixes)
  length = longest if length is None else length
  if length < longest:
    raise PrefixShapeError(f"pad length {length} < longest prefix {longest}")
  slot_axis = {"hidden": -2, "kv": -3, "prompt": -2}[prefixes[0].form]

  def pad(x, lp):
    widths = [(0, 0)] * x.ndim
    widths[slot_axis] = (0, length - lp)
    return jnp.pad(x, widths)

  fields = {"hidden": ["hidden"], "kv": ["keys", "values"], "prompt": ["prompt"]}[
      prefixes[0].form]
  stacked = {f: jnp.stack([pad(getattr(p, f), p.length) for p in prefixes]) for f in fields}
  masks = []
  for p in prefixes:
    m = jnp.ones((p.length,), bool) if p.mask is None else p.mask.astype(bool)
    masks.append(jnp.pad(m, (0, length - p.length)))
  return Prefix(**stacked, mask=jnp.stack(masks))
