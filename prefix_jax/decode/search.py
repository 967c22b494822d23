"""Picks the search from the config."""
from __future__ import annotations

from prefix_jax.decode.beam import beam_search
from prefix_jax.decode.config import DecodeConfig
from prefix_jax.decode.greedy import greedy_search
from prefix_jax.decode.output import DecodeOutput


def generate(model, backbone: dict, inputs, mask=None, prefix=None, *,
             config: DecodeConfig, infix: bool = False, delta=None) -> DecodeOutput:
  """Greedy if `config.num_beams == 1`, else beam search (arguments as `greedy_search`)."""
  search = greedy_search if config.num_beams == 1 else beam_search
  return search(model, backbone, inputs, mask, prefix, config=config, infix=infix, delta=delta)
