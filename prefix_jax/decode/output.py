"""What a search returns."""
from __future__ import annotations

import jax
from flax import struct

Array = jax.Array


@struct.dataclass
class DecodeOutput:
  """tokens [B, N] int32: generated ids, EOS included if produced, `pad_id` after it.
  lengths [B] int32: tokens before the EOS (`tokens[b, :lengths[b]]` is the text).
  logprobs [B] float32: total model log-probability of the generated tokens (EOS included).
  scores [B] float32: what the search ranked by (= logprobs for greedy; length-penalized for
  beam search).
  """
  tokens: Array
  lengths: Array
  logprobs: Array
  scores: Array
