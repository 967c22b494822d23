"""What a prefix is: the method, its size, its parameterization and where it sits."""
from __future__ import annotations

import dataclasses

from prefix_jax.models.prefix_types import FORMS, PrefixShapeError

REPARAMS = ("none", "mlp")
INITS = ("random", "vocab", "words")
PLACEMENTS = ("prefix", "infix")


@dataclasses.dataclass(frozen=True)
class PrefixSpec:
  """A prefix method.

  method:     'hidden' (per-layer hidden states, outputs discarded), 'kv' (per-layer keys and
              values; the paper's code, P-tuning v2) or 'prompt' (input embeddings only).
  length:     Lp, number of prefix vectors (per layer).
  reparam:    'none' or 'mlp': P = MLP(P') with P' [Lp, H] and hidden size `mlp_hidden`
              (Li & Liang: Linear(H, k) -> tanh -> Linear(k, out)). Fold it away for inference.
  init:       'random' (normal, `init_std`), 'vocab' (activations of `length` randomly sampled
              vocabulary tokens), 'words' (activations of the tokens of `init_text`, tiled or cut
              to `length`: the paper's "table-to-text:" init).
  placement:  'prefix' (before the input) or 'infix' (between source and target; the batch's
              `prefix_at` says where).
  num_tasks:  0 for one prefix; N > 0 for a bank of N prefixes indexed by the batch's `task`.
  """
  method: str = "kv"
  length: int = 5
  reparam: str = "none"
  mlp_hidden: int = 512
  init: str = "random"
  init_text: str = "table-to-text:"
  init_std: float = 0.02
  placement: str = "prefix"
  num_tasks: int = 0

  def __post_init__(self):
    if self.method not in FORMS:
      raise PrefixShapeError(f"prefix method '{self.method}' unknown (choose from {FORMS})")
    if not isinstance(self.length, int) or self.length <= 0:
      raise PrefixShapeError(f"prefix length must be a positive int, got {self.length!r}")
    if self.reparam not in REPARAMS:
      raise PrefixShapeError(f"prefix reparam '{self.reparam}' unknown (choose from {REPARAMS})")
    if self.reparam == "mlp" and self.mlp_hidden <= 0:
      raise PrefixShapeError(f"mlp_hidden must be > 0, got {self.mlp_hidden}")
    if self.init not in INITS:
      raise PrefixShapeError(f"prefix init '{self.init}' unknown (choose from {INITS})")
    if self.placement not in PLACEMENTS:
      raise PrefixShapeError(f"prefix placement '{self.placement}' unknown "
                             f"(choose from {PLACEMENTS})")
    if self.num_tasks < 0:
      raise PrefixShapeError(f"num_tasks must be >= 0, got {self.num_tasks}")

  def replace(self, **kw) -> "PrefixSpec":
    return dataclasses.replace(self, **kw)

  @classmethod
  def from_config(cls, config) -> "PrefixSpec":
    """From an ml_collections ConfigDict / mapping with the same field names."""
    data = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise PrefixShapeError(f"unknown prefix config keys {unknown} (known: {sorted(known)})")
    return cls(**data)
