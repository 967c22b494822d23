"""Narrow beam search (K = 2, 3) against transformers' `generate(num_beams=K)` on tiny random
GPT-2 / LLaMA checkpoints with the same weights: tokens and length-penalized scores.

Settings matched: `do_sample=False`, the same EOS and pad ids, `max_new_tokens`, and
`early_stopping="never"`, HF's exact stopping rule (ours never stops before the result is
certain; HF's default heuristic may stop sooner). HF counts the EOS in a hypothesis' length,
as ours does. The EOS id is chosen as a token the model produces, so hypotheses do end early.
"""
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import hf_refs
from prefix_jax.decode import DecodeConfig, beam_search
from prefix_jax.models import build_model
from prefix_jax.weights.hf import load_hf_dir

N_NEW = 7


def _hf_beam(ref, ids, config: DecodeConfig):
  """(tokens [B, N_NEW] padded with pad_id after the EOS, scores [B]) of HF generate (which
  fills the slots after an EOS with the EOS itself here)."""
  with torch.no_grad():
    out = ref.generate(torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                       do_sample=False, num_beams=config.num_beams, num_return_sequences=1,
                       max_new_tokens=config.max_new_tokens,
                       min_new_tokens=config.min_length,
                       eos_token_id=config.eos_id, pad_token_id=config.pad_id,
                       length_penalty=config.length_penalty, early_stopping="never",
                       return_dict_in_generate=True, output_scores=True)
  new = out.sequences[:, ids.shape[1]:].numpy()
  tokens = np.full((ids.shape[0], config.max_new_tokens), config.pad_id)
  tokens[:, :new.shape[1]] = new
  for row in tokens:
    ends = np.flatnonzero(row == config.eos_id)
    if ends.size:
      row[ends[0] + 1:] = config.pad_id
  return tokens, out.sequences_scores.numpy()


def _pick_eos(ref, ids, config, free) -> int:
  """The token the model produces most often early on; with a min length, the first of the
  tokens produced right after it whose ban changes HF's result."""
  if not config.min_length:
    return int(np.bincount(free[:, :3].ravel()).argmax())
  for eos in np.unique(free[:, config.min_length - 1:config.min_length + 1]):
    strict = _hf_beam(ref, ids, config.replace(eos_id=int(eos)))[0]
    looser = _hf_beam(ref, ids, config.replace(eos_id=int(eos),
                                               min_length=config.min_length - 1))[0]
    if (strict != looser).any():
      return int(eos)
  raise AssertionError("no EOS candidate makes the min length matter")


@pytest.mark.parametrize("arch,k,alpha,min_len", [
    ("gpt2", 2, 1.0, 0), ("gpt2", 3, 0.0, 0), ("llama", 3, 1.0, 0), ("llama", 2, 0.0, 0),
    ("gpt2", 3, 0.0, 2)])
def test_narrow_beam_equals_hf_generate(tmp_path, arch, k, alpha, min_len):
  """min_len: EOS banned for the first min_len tokens (HF `min_new_tokens`); the EOS is then
  chosen so that HF's result with min_len - 1 differs (the ban decides the result)."""
  ref = hf_refs.tiny_gpt2(tmp_path, seed=3) if arch == "gpt2" else hf_refs.tiny_llama(
      tmp_path, seed=3)
  with torch.no_grad():  # sharper next-token distributions than HF's init: clear beams
    for p in ref.parameters():
      if p.ndim == 2:
        p.mul_(4.0)
  ref.save_pretrained(tmp_path, safe_serialization=True)
  cfg, params, _ = load_hf_dir(tmp_path)
  model = build_model(cfg)
  ids = np.random.RandomState(5).randint(2, cfg.vocab_size, (4, 5))
  config = DecodeConfig(max_new_tokens=N_NEW, num_beams=k, pad_id=0, length_penalty=alpha,
                        min_length=min_len)
  free = np.asarray(beam_search(model, params, jnp.asarray(ids), config=config).tokens)
  # The EOS: the token the model produces most often early on, so hypotheses do end.
  config = config.replace(eos_id=_pick_eos(ref, ids, config, free))
  ours = beam_search(model, params, jnp.asarray(ids), config=config)
  tokens, scores = _hf_beam(ref, ids, config)
  np.testing.assert_array_equal(np.asarray(ours.tokens), tokens)
  np.testing.assert_allclose(np.asarray(ours.scores), scores, atol=1e-4, rtol=0)
  lengths = np.asarray(ours.lengths)
  # Some hypothesis ended at the EOS (with a min length, _pick_eos made the EOS matter).
  assert min_len or (lengths < N_NEW).any(), lengths
  assert (lengths >= min_len).all(), lengths
