"""BART generation: the encoder runs once, the decoder prefix enters the cache once, the cross
prefix is attended at every step; cached decoding equals uncached argmax decoding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.decode import DecodeConfig, beam_search, greedy_search
from prefix_jax.models import build_model
from prefix_jax.prefixes import Prefix
from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
from test_bart_prefix import CFG, _kv
from test_bert_prefix import random_params


@pytest.fixture(scope="module")
def bart():
  model = build_model(CFG)
  return model, random_params(model)


def _uncached_greedy(model, params, src, mask, prefix, n):
  """Argmax decoding by rerunning the whole decoder each step (no cache). The decoder is
  causal, so the slots not generated yet (right of the current one) change nothing: one
  compiled shape [B, n] serves every step."""
  b = src.shape[0]
  apply = jax.jit(lambda tgt: model.apply({"params": params}, src, tgt, prefix=prefix,
                                          src_mask=mask))
  tgt = jnp.zeros((b, n), jnp.int32).at[:, 0].set(CFG.decoder_start_token_id)
  out = []
  for i in range(n):
    tok = jnp.argmax(apply(tgt)[:, i], -1).astype(jnp.int32)
    out.append(tok)
    if i + 1 < n:
      tgt = tgt.at[:, i + 1].set(tok)
  return np.stack(out, 1)


@pytest.mark.parametrize("parts", [(), ("encoder", "decoder", "cross"), ("cross",)])
def test_cached_greedy_equals_uncached_argmax(bart, parts):
  model, params = bart
  rs = np.random.RandomState(0)
  src = jnp.asarray(rs.randint(3, CFG.vocab_size, (2, 6)))
  mask = jnp.asarray(np.arange(6)[None] >= np.array([[0], [2]]))  # row 1 left-padded
  prefix = Seq2SeqPrefix(**{p: _kv(p, 10 * i) for i, p in enumerate(parts)}) if parts else None
  config = DecodeConfig(max_new_tokens=6, num_beams=1)
  ours = greedy_search(model, params, src, mask, prefix, config=config)
  ref = _uncached_greedy(model, params, src, mask, prefix, 6)
  np.testing.assert_array_equal(np.asarray(ours.tokens), ref)
  # Beam 1 is greedy for BART too.
  beam = beam_search(model, params, src, mask, prefix, config=config.replace(length_penalty=0.0))
  np.testing.assert_array_equal(np.asarray(beam.tokens), ref)


def test_per_example_cross_prefix_equals_separate_runs(bart):
  model, params = bart
  src = jnp.asarray(np.random.RandomState(1).randint(3, CFG.vocab_size, (2, 5)))
  a, b = _kv("cross", 1), _kv("cross", 5)
  both = Prefix(keys=jnp.stack([a.keys, b.keys]), values=jnp.stack([a.values, b.values]))
  config = DecodeConfig(max_new_tokens=5, num_beams=3, length_penalty=0.0)
  mixed = beam_search(model, params, src, None, Seq2SeqPrefix(cross=both), config=config)
  for i, p in enumerate((a, b)):
    alone = beam_search(model, params, src[i:i + 1], None, Seq2SeqPrefix(cross=p), config=config)
    np.testing.assert_array_equal(np.asarray(mixed.tokens[i]), np.asarray(alone.tokens[0]))


def test_seq2seq_request_errors(bart):
  model, params = bart
  src = jnp.zeros((1, 22), jnp.int32)
  with pytest.raises(ValueError, match="source length 22 \\+ encoder prefix length 3 exceeds"):
    greedy_search(model, params, src, None, Seq2SeqPrefix(encoder=_kv("encoder", 0)),
                  config=DecodeConfig(max_new_tokens=4))
  with pytest.raises(ValueError, match="decoder prefix length 2 \\+ max_new_tokens 30 = 32"):
    greedy_search(model, params, src[:, :4], None, Seq2SeqPrefix(decoder=_kv("decoder", 0)),
                  config=DecodeConfig(max_new_tokens=30))
