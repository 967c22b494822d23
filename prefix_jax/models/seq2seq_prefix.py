"""The prefix of an encoder-decoder backbone: one `Prefix` per kind of attention.

As in Li & Liang's BART experiments, prefix-tuning an encoder-decoder prefixes three
attentions, each with its own per-layer arrays:
  * encoder: encoder self-attention (kv, hidden, or prompt on the encoder input);
  * decoder: decoder self-attention (kv or hidden); causal, every target token sees it;
  * cross:   decoder cross-attention (kv, or hidden projected through the cross-attention's
             W_k/W_v); extra memory slots that every target token sees.
Any part may be None. Each part follows `Prefix` (shared or per-example, optional `mask`).
"""
from __future__ import annotations

import jax
from flax import struct

from prefix_jax.models.prefix_types import Prefix, PrefixShapeError

ALLOWED_FORMS = {"encoder": ("kv", "hidden", "prompt"), "decoder": ("kv", "hidden"),
                 "cross": ("kv", "hidden")}


@struct.dataclass
class Seq2SeqPrefix:
  encoder: Prefix | None = None
  decoder: Prefix | None = None
  cross: Prefix | None = None

  def parts(self) -> dict[str, Prefix]:
    """The set, non-empty parts by name."""
    out = {}
    for name in ("encoder", "decoder", "cross"):
      p = getattr(self, name)
      if p is not None and p.length > 0:
        out[name] = p
    return out

  def check(self, *, num_encoder_layers: int, num_decoder_layers: int, hidden_size: int,
            num_kv_heads: int, head_dim: int, batch: int | None = None) -> None:
    """Raises PrefixShapeError (naming the part and the sizes) if a part does not fit."""
    for name, p in self.parts().items():
      if not isinstance(p, Prefix):
        raise PrefixShapeError(f"{name} prefix must be a Prefix, got {type(p).__name__}")
      if p.form not in ALLOWED_FORMS[name]:
        raise PrefixShapeError(f"{name} prefix cannot take the {p.form} form "
                               f"(allowed: {', '.join(ALLOWED_FORMS[name])})")
      layers = num_encoder_layers if name == "encoder" else num_decoder_layers
      try:
        p.check(num_layers=layers, hidden_size=hidden_size, num_kv_heads=num_kv_heads,
                head_dim=head_dim, batch=batch)
      except PrefixShapeError as e:
        raise PrefixShapeError(f"{name} prefix: {e}") from None

  def gather(self, ids: jax.Array) -> "Seq2SeqPrefix":
    """Rows `ids` [B] of a bank (leading axis = task) in every part."""
    return Seq2SeqPrefix(**{n: None if getattr(self, n) is None else getattr(self, n).gather(ids)
                            for n in ("encoder", "decoder", "cross")})
