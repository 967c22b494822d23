"""Architecture hyperparameters of a frozen backbone."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Shapes and options of a transformer backbone.

  `arch` picks the module: 'llama' (RMSNorm, RoPE, GQA, SwiGLU), 'gpt2' (learned positions,
  LayerNorm, GELU), 'bert' (encoder), 'bart' (encoder-decoder).
  """
  arch: str
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_positions: int
  num_kv_heads: int | None = None        # None: = num_heads (no GQA)
  head_dim: int | None = None            # None: hidden_size // num_heads
  rope_theta: float = 10000.0
  norm_eps: float = 1e-5
  tie_embeddings: bool = False
  activation: str = "silu"
  # Encoder / encoder-decoder options (bert, bart).
  num_decoder_layers: int | None = None
  type_vocab_size: int = 0
  num_labels: int = 0
  pad_token_id: int | None = None
  bos_token_id: int | None = None
  eos_token_id: int | None = None
  decoder_start_token_id: int | None = None
  extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

  def __post_init__(self):
    if self.num_kv_heads is None:
      object.__setattr__(self, "num_kv_heads", self.num_heads)
    if self.head_dim is None:
      object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
    for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                 "max_positions", "num_kv_heads", "head_dim"):
      if getattr(self, name) <= 0:
        raise ValueError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                       f"num_kv_heads={self.num_kv_heads}")

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)

  @property
  def kv_dim(self) -> int:
    return self.num_kv_heads * self.head_dim
