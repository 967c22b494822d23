"""Infix decoding: the infix sits between the prompt and the generated tokens, as in training
(`prefix_at` = the source length). Cached decoding equals argmax decoding by rerunning the
whole model with `prefix_at`, and differs from decoding the same vectors as a true prefix."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.decode import DecodeConfig, beam_search, greedy_search
from prefix_jax.models import build_model
from prefix_jax.prefixes import Prefix
from prefix_jax.train.backbone import load_backbone

S, N, LP = 6, 5, 3


def _uncached_argmax(model, params, src, mask, prefix, prefix_at):
  """Rerun the full [B, S + N] row each step (causal: slots not generated yet change nothing)
  and take the argmax after the last generated token."""
  run = jax.jit(lambda tokens, m: model.apply({"params": params}, tokens, prefix=prefix, mask=m,
                                              prefix_at=prefix_at))
  b = src.shape[0]
  tokens = jnp.concatenate([src, jnp.zeros((b, N), jnp.int32)], 1)
  full_mask = jnp.concatenate([mask, jnp.ones((b, N), bool)], 1)
  out = []
  for i in range(N):
    tok = jnp.argmax(run(tokens, full_mask)[:, S - 1 + i], -1).astype(jnp.int32)
    out.append(tok)
    tokens = tokens.at[:, S + i].set(tok)
  return np.stack(out, 1)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_cached_infix_decoding_equals_uncached_argmax(name):
  cfg, params, _ = load_backbone(name)
  model = build_model(cfg)
  rs = np.random.RandomState(0)
  src = jnp.asarray(rs.randint(0, 2000, (2, S)), jnp.int32)
  mask = jnp.asarray(np.arange(S)[None] >= np.array([[0], [2]]))  # row 1 left-padded
  shape = (cfg.num_layers, LP, cfg.num_kv_heads, cfg.head_dim)
  keys, values = jax.random.normal(jax.random.PRNGKey(1), (2, *shape)) * 3.0
  prefix = Prefix(keys=keys, values=values)
  at = jnp.full((2,), S, jnp.int32)
  ref = _uncached_argmax(model, params, src, mask, prefix, at)
  as_prefix = _uncached_argmax(model, params, src, mask, prefix, None)
  assert (ref != as_prefix).any()  # where the vectors sit matters for these tokens
  config = DecodeConfig(max_new_tokens=N)
  ours = greedy_search(model, params, src, mask, prefix, config=config, infix=True)
  np.testing.assert_array_equal(np.asarray(ours.tokens), ref)
  beam = beam_search(model, params, src, mask, prefix, infix=True,
                     config=config.replace(num_beams=1, length_penalty=0.0))
  np.testing.assert_array_equal(np.asarray(beam.tokens), ref)


@pytest.mark.parametrize("method,infix", [("infix", True), ("prefix", False)])
def test_evaluation_decodes_an_infix_as_an_infix(method, infix, monkeypatch, shared_dir):
  """evaluate passes the run's placement to generation (a dropped flag decodes a true prefix)."""
  from prefix_jax import evaluate
  from prefix_jax.prefixes import PrefixSpec
  from run_tiny import tiny_config
  seen = {}

  def spy(model, backbone, prefix, batches, tokenizer, *, out_path, config, infix=False,
          delta=None):
    seen["infix"] = infix
    return ["x"] * sum(int(b["valid"].sum()) for b in batches)

  monkeypatch.setattr(evaluate, "generate_dataset", spy)
  config = tiny_config("configs/e2e.py", f"method={method}", **{"decode.num_examples": 2})
  cfg, params, tok = load_backbone("tiny-llama")
  spec = PrefixSpec.from_config(config.prefix)
  preds, refs, _ = evaluate.generate_split(config, build_model(cfg), params, None, spec, tok,
                                           "test", "unused")
  assert seen["infix"] is infix and len(preds) == len(refs) == 2
