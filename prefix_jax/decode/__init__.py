"""Decoding for decoder-only backbones: greedy and beam search over a KV cache (the prefix
enters the cache once), batched generation over a dataset."""
from prefix_jax.decode.beam import beam_search
from prefix_jax.decode.config import PAPER, XSUM, DecodeConfig, check_request
from prefix_jax.decode.dataset import generate_dataset, newline_ids
from prefix_jax.decode.greedy import greedy_search
from prefix_jax.decode.output import DecodeOutput
from prefix_jax.decode.search import generate

__all__ = ["DecodeConfig", "DecodeOutput", "PAPER", "XSUM", "beam_search", "check_request",
           "generate", "generate_dataset", "greedy_search", "newline_ids"]
