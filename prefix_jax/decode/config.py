"""Decoding options and the size checks run before anything is traced."""
from __future__ import annotations

import dataclasses

from prefix_jax.models.config import ModelConfig
from prefix_jax.prefixes.types import Prefix

PENALTY_STYLES = ("hf", "gnmt")


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How to decode. Only `max_new_tokens` and `num_beams` shape the compiled loops; the other
  fields are passed as traced arrays (`processors.Rules`) and never cause a recompilation.

  max_new_tokens: tokens generated per example (EOS included).
  num_beams: beam width (1 = greedy for `generate`).
  min_length: EOS is banned while fewer than this many tokens have been generated, so every
    output has at least `min_length` tokens before its EOS.
  eos_id: stops a hypothesis; None never stops (always `max_new_tokens` tokens).
  pad_id: fills the output after EOS.
  banned_ids: token ids never generated (e.g. newlines).
  length_penalty: alpha of the beam score; 0 ranks by total log-probability.
  no_repeat_ngram_size: n > 0 never generates an n-gram twice in one output (HF's
    `no_repeat_ngram_size`; BART's XSUM setting uses 3); static, like the shapes.
  length_penalty_style: 'hf' scores `logp / len**alpha` (HF transformers >= 4.50), 'gnmt'
    scores `logp / ((5 + len) / 6)**alpha` (Wu et al. 2016). `len` counts generated tokens
    including the EOS in both.
  """
  max_new_tokens: int = 100
  num_beams: int = 1
  min_length: int = 0
  eos_id: int | None = None
  pad_id: int = 0
  banned_ids: tuple[int, ...] = ()
  length_penalty: float = 1.0
  length_penalty_style: str = "hf"
  no_repeat_ngram_size: int = 0

  def __post_init__(self):
    if self.max_new_tokens <= 0:
      raise ValueError(f"max_new_tokens must be > 0, got {self.max_new_tokens}")
    if self.num_beams <= 0:
      raise ValueError(f"num_beams must be > 0, got {self.num_beams}")
    if self.no_repeat_ngram_size < 0:
      raise ValueError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
    if self.min_length < 0:
      raise ValueError(f"min_length must be >= 0, got {self.min_length}")
    if self.length_penalty_style not in PENALTY_STYLES:
      raise ValueError(f"length_penalty_style must be one of {PENALTY_STYLES}, got "
                       f"'{self.length_penalty_style}'")
    object.__setattr__(self, "banned_ids", tuple(sorted({int(i) for i in self.banned_ids})))

  def replace(self, **kw) -> "DecodeConfig":
    return dataclasses.replace(self, **kw)


# The prefix-tuning paper's table-to-text decoding, and the XSUM setting (BART's).
PAPER = DecodeConfig(max_new_tokens=100, num_beams=5)
XSUM = DecodeConfig(max_new_tokens=62, num_beams=6, min_length=11, length_penalty=1.0,
                    no_repeat_ngram_size=3)


def _check_inputs(cfg: ModelConfig, config: DecodeConfig, inputs_shape: tuple,
                  mask_shape: tuple | None) -> tuple[int, int]:
  if len(inputs_shape) != 2:
    raise ValueError(f"inputs must be [B, S], got shape {tuple(inputs_shape)}")
  b, s = inputs_shape
  if mask_shape is not None and tuple(mask_shape) != (b, s):
    raise ValueError(f"mask shape {tuple(mask_shape)} != inputs shape {(b, s)}")
  if s <= 0:
    raise ValueError("inputs must hold at least one token per row (S >= 1)")
  for name, ids in (("banned_ids", config.banned_ids),
                    ("eos_id", () if config.eos_id is None else (config.eos_id,)),
                    ("pad_id", (config.pad_id,))):
    bad = [i for i in ids if not 0 <= i < cfg.vocab_size]
    if bad:
      raise ValueError(f"{name} {bad} outside the vocabulary [0, {cfg.vocab_size})")
  return b, s


def check_request(cfg: ModelConfig, config: DecodeConfig, inputs_shape: tuple,
                  prefix: Prefix | None, mask_shape: tuple | None = None) -> int:
  """Raises a one-line ValueError for a request that cannot run; returns the cache size.

  The cache holds the prefix slots, the source and every generated token but the last.
  """
  if prefix is not None and not isinstance(prefix, Prefix):
    raise TypeError(f"prefix must be a materialized Prefix or None, got {type(prefix).__name__} "
                    "(run prefixes.fold_reparam / materialize first: no MLP at decode time)")
  _, s = _check_inputs(cfg, config, inputs_shape, mask_shape)
  lp = 0 if prefix is None else prefix.length
  total = s + lp + config.max_new_tokens
  if total > cfg.max_positions:
    raise ValueError(f"source length {s} + prefix length {lp} + max_new_tokens "
                     f"{config.max_new_tokens} = {total} exceeds the model's max_positions "
                     f"{cfg.max_positions}")
  return s + lp + config.max_new_tokens - 1


def check_seq2seq_request(cfg: ModelConfig, config: DecodeConfig, inputs_shape: tuple,
                          prefix, mask_shape: tuple | None = None) -> int:
  """As `check_request` for an encoder-decoder; returns the decoder cache size (decoder
  prefix slots + the start token + every generated token but the last)."""
  from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
  if prefix is not None and not isinstance(prefix, Seq2SeqPrefix):
    raise TypeError(f"an encoder-decoder takes a materialized Seq2SeqPrefix or None, got "
                    f"{type(prefix).__name__}")
  if cfg.decoder_start_token_id is None:
    raise ValueError("the model config has no decoder_start_token_id")
  _, s = _check_inputs(cfg, config, inputs_shape, mask_shape)
  part_len = lambda p: 0 if prefix is None or getattr(prefix, p) is None else getattr(
      prefix, p).length
  if s + part_len("encoder") > cfg.max_positions:
    raise ValueError(f"source length {s} + encoder prefix length {part_len('encoder')} exceeds "
                     f"the model's max_positions {cfg.max_positions}")
  size = part_len("decoder") + config.max_new_tokens
  if size > cfg.max_positions:
    raise ValueError(f"decoder prefix length {part_len('decoder')} + max_new_tokens "
                     f"{config.max_new_tokens} = {size} exceeds the model's max_positions "
                     f"{cfg.max_positions}")
  return size
