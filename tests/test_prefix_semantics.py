"""What a prefix does to the backbone, checked against hand-built references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import attention
from prefix_jax.models.gpt2 import GPT2Block
from prefix_jax.models.llama import LlamaBlock
from prefix_jax.prefixes import Prefix, PrefixShapeError, pad_and_stack
from tiny import apply, tiny_model

ARCHS = ["llama", "gpt2"]
BLOCKS = {"llama": (LlamaBlock, "layers_"), "gpt2": (GPT2Block, "h_")}


def _tokens(cfg, shape, seed=0):
  return jnp.asarray(np.random.RandomState(seed).randint(0, cfg.vocab_size, shape))


def _hidden(cfg, lp, seed=1, batch=None):
  shape = (cfg.num_layers, lp, cfg.hidden_size) if batch is None else (
      batch, cfg.num_layers, lp, cfg.hidden_size)
  return jax.random.normal(jax.random.PRNGKey(seed), shape)


def _embed(model, params, tokens, pos):
  return apply(model, {"params": params}, tokens, pos, method=type(model).embed_tokens)


def _head(model, params, x):
  return apply(model, {"params": params}, x, method=_norm_and_unembed)


def _norm_and_unembed(m, h):
  return m.unembed(m.final_norm_fn(h))


@functools.lru_cache(maxsize=None)
def _block(block_cls, cfg):
  return block_cls(cfg)


def _run_block(arch, cfg, params, l, x, pos):
  """The unmodified layer l over x [B, S, H] at positions [B, S] with a causal mask."""
  block_cls, prefix = BLOCKS[arch]
  mask = attention.causal_mask(pos, pos, jnp.ones(pos.shape, bool))
  out, _ = apply(_block(block_cls, cfg), {"params": params[f"{prefix}{l}"]}, x, pos, mask)
  return out


def _reference_hidden(arch, cfg, model, params, tokens, hidden, insert_at=0):
  """Textbook hidden-state prefix: per layer, insert P_l into the layer input at `insert_at`,
  run the unmodified layer over Lp + T positions, drop the outputs at the prefix positions."""
  b, t = tokens.shape
  lp = hidden.shape[-2]
  seq_pos = jnp.arange(t) + lp * (jnp.arange(t) >= insert_at)
  x = _embed(model, params, tokens, jnp.broadcast_to(seq_pos, (b, t)))
  all_pos = jnp.broadcast_to(jnp.arange(t + lp), (b, t + lp))
  keep = np.r_[0:insert_at, insert_at + lp:t + lp]
  layer_inputs = []
  for l in range(cfg.num_layers):
    layer_inputs.append(x)
    p = jnp.broadcast_to(hidden[l], (b, lp, cfg.hidden_size)) if hidden.ndim == 3 else hidden[:, l]
    full = jnp.concatenate([x[:, :insert_at], p, x[:, insert_at:]], axis=1)
    x = _run_block(arch, cfg, params, l, full, all_pos)[:, keep]
  return _head(model, params, x), layer_inputs


@pytest.mark.parametrize("arch", ARCHS)
def test_hidden_form_equals_textbook_reference_at_every_layer(arch):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 7))
  hidden = _hidden(cfg, lp=4)
  logits, state = apply(model, {"params": params}, tokens, prefix=Prefix(hidden=hidden),
                              mutable=["intermediates"])
  ref_logits, ref_inputs = _reference_hidden(arch, cfg, model, params, tokens, hidden)
  ours_inputs = state["intermediates"]["layer_inputs"]
  assert len(ours_inputs) == cfg.num_layers
  for l in range(cfg.num_layers):
    np.testing.assert_allclose(ours_inputs[l], ref_inputs[l], atol=1e-5, rtol=0,
                               err_msg=f"layer {l} input")
  np.testing.assert_allclose(logits, ref_logits, atol=1e-5, rtol=0)
  # The prefix really matters: a different P_1 changes the output.
  other = hidden.at[1].multiply(jax.random.normal(jax.random.PRNGKey(9), hidden[1].shape))
  moved = apply(model, {"params": params}, tokens, prefix=Prefix(hidden=other))
  assert np.abs(np.asarray(moved - logits)).max() > 1e-3


@pytest.mark.parametrize("arch", ARCHS)
def test_infix_equals_textbook_insertion_between_source_and_target(arch):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (1, 9))
  hidden = _hidden(cfg, lp=3)
  src = 4
  ours = apply(model, {"params": params}, tokens, prefix=Prefix(hidden=hidden),
                     prefix_at=jnp.asarray([src]))
  ref, _ = _reference_hidden(arch, cfg, model, params, tokens, hidden, insert_at=src)
  np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
  # The source (before the infix) is untouched by it: equal to the plain backbone there.
  plain = apply(model, {"params": params}, tokens)
  np.testing.assert_allclose(ours[:, :src], plain[:, :src], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_prompt_form_equals_embedding_concatenation(arch):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 6))
  lp = 3
  prompt = jax.random.normal(jax.random.PRNGKey(3), (lp, cfg.hidden_size))
  ours = apply(model, {"params": params}, tokens, prefix=Prefix(prompt=prompt))
  # Reference: [prompt ; token embeddings] through every unmodified layer, prompt outputs dropped.
  b, t = tokens.shape
  pos = jnp.broadcast_to(jnp.arange(lp + t), (b, lp + t))
  x = jnp.concatenate([
      apply(model, {"params": params}, jnp.broadcast_to(prompt, (b, lp, cfg.hidden_size)),
                  pos[:, :lp], method=type(model).embed_vectors),
      _embed(model, params, tokens, pos[:, lp:])], axis=1)
  for l in range(cfg.num_layers):
    x = _run_block(arch, cfg, params, l, x, pos)
  np.testing.assert_allclose(ours, _head(model, params, x[:, lp:]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_no_prefix_and_zero_length_prefix_equal_plain_backbone(arch):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 6))
  plain = np.asarray(apply(model, {"params": params}, tokens))
  for prefix in (None, Prefix(hidden=jnp.zeros((cfg.num_layers, 0, cfg.hidden_size))),
                 Prefix(prompt=jnp.zeros((0, cfg.hidden_size)))):
    out = np.asarray(apply(model, {"params": params}, tokens, prefix=prefix))
    np.testing.assert_array_equal(out, plain)
  # A prefix whose slots are all switched off (mask False) is no prefix either.
  off = Prefix(hidden=_hidden(cfg, 4), mask=jnp.zeros((4,), bool))
  np.testing.assert_allclose(apply(model, {"params": params}, tokens, prefix=off), plain,
                             atol=1e-6, rtol=0)


def _kv_by_hand(arch, cfg, params, hidden):
  """Keys/values of hidden prefix vectors through the frozen norm and W_k, W_v (numpy)."""
  keys, values = [], []
  lp = hidden.shape[-2]
  for l in range(cfg.num_layers):
    h = np.asarray(hidden[l], np.float64)
    if arch == "llama":
      p = params[f"layers_{l}"]
      normed = h / np.sqrt(np.mean(h * h, -1, keepdims=True) + cfg.norm_eps)
      normed = normed * np.asarray(p["attn_norm"]["scale"])
      k = (normed @ np.asarray(p["attn"]["k_proj"]["kernel"])).reshape(lp, cfg.num_kv_heads, -1)
      v = (normed @ np.asarray(p["attn"]["v_proj"]["kernel"])).reshape(lp, cfg.num_kv_heads, -1)
      d = cfg.head_dim
      inv = 1.0 / cfg.rope_theta ** (np.arange(0, d, 2) / d)
      ang = np.arange(lp)[:, None] * inv
      ang = np.concatenate([ang, ang], -1)[:, None, :]
      rot = np.concatenate([-k[..., d // 2:], k[..., :d // 2]], -1)
      k = k * np.cos(ang) + rot * np.sin(ang)
    else:
      p = params[f"h_{l}"]
      mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
      normed = (h - mu) / np.sqrt(var + cfg.norm_eps) * np.asarray(p["ln_1"]["scale"]) + \
          np.asarray(p["ln_1"]["bias"])
      qkv = normed @ np.asarray(p["attn"]["c_attn"]["kernel"]) + np.asarray(
          p["attn"]["c_attn"]["bias"])
      hs = cfg.hidden_size
      k = qkv[:, hs:2 * hs].reshape(lp, cfg.num_heads, -1)
      v = qkv[:, 2 * hs:].reshape(lp, cfg.num_heads, -1)
    keys.append(k)
    values.append(v)
  return Prefix(keys=jnp.asarray(np.stack(keys), jnp.float32),
                values=jnp.asarray(np.stack(values), jnp.float32))


@pytest.mark.parametrize("arch", ARCHS)
def test_kv_form_from_frozen_projections_equals_hidden_form(arch):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 7))
  hidden = _hidden(cfg, lp=5)
  by_hidden = apply(model, {"params": params}, tokens, prefix=Prefix(hidden=hidden))
  kv = _kv_by_hand(arch, cfg, params, hidden)
  by_kv = apply(model, {"params": params}, tokens, prefix=kv)
  np.testing.assert_allclose(by_kv, by_hidden, atol=1e-5, rtol=0)
  # prefix_to_kv (computed once per task for serving) gives the same keys/values.
  cached = apply(model, {"params": params}, Prefix(hidden=hidden),
                 method=type(model).prefix_to_kv)
  np.testing.assert_allclose(cached.keys, kv.keys, atol=1e-5, rtol=0)
  np.testing.assert_allclose(cached.values, kv.values, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("form", ["hidden", "kv", "prompt"])
def test_per_example_prefixes_equal_separate_runs(arch, form):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 6))
  make = {
      "hidden": lambda s, lp: Prefix(hidden=_hidden(cfg, lp, seed=s)),
      "kv": lambda s, lp: Prefix(
          keys=jax.random.normal(jax.random.PRNGKey(s), (cfg.num_layers, lp, cfg.num_kv_heads,
                                                         cfg.head_dim)),
          values=jax.random.normal(jax.random.PRNGKey(s + 7), (cfg.num_layers, lp,
                                                               cfg.num_kv_heads, cfg.head_dim))),
      "prompt": lambda s, lp: Prefix(prompt=jax.random.normal(jax.random.PRNGKey(s),
                                                              (lp, cfg.hidden_size))),
  }[form]
  # Two tasks with *different lengths*: the bank pads to the longest and masks.
  pa, pb = make(10, 4), make(20, 2)
  bank = pad_and_stack([pa, pb])
  mixed = apply(model, {"params": params}, tokens, prefix=bank.gather(jnp.asarray([0, 1])))
  alone_a = apply(model, {"params": params}, tokens[:1], prefix=pa)
  alone_b = apply(model, {"params": params}, tokens[1:], prefix=pb)
  np.testing.assert_allclose(mixed[0], alone_a[0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(mixed[1], alone_b[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_with_prefix_equals_unpadded_run(arch, side):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 8))
  prefix = Prefix(hidden=_hidden(cfg, 3))
  n = 5
  mask = np.ones((2, 8), bool)
  mask[1] = np.arange(8) < n if side == "right" else np.arange(8) >= 8 - n
  out = apply(model, {"params": params}, tokens, prefix=prefix, mask=jnp.asarray(mask))
  alone = apply(model, {"params": params}, tokens[1:, mask[1]], prefix=prefix)
  np.testing.assert_allclose(out[1][mask[1]], alone[0], atol=1e-5, rtol=0)
  # Padding keys are invisible: changing padded tokens changes nothing at real positions.
  other = jnp.where(jnp.asarray(mask), tokens, (tokens + 7) % cfg.vocab_size)
  out2 = apply(model, {"params": params}, other, prefix=prefix, mask=jnp.asarray(mask))
  np.testing.assert_allclose(out2[1][mask[1]], out[1][mask[1]], atol=1e-6, rtol=0)


def test_every_real_token_sees_prefix_and_causality_holds():
  q_pos = jnp.asarray([[3, 4, 5]])
  k_pos = jnp.asarray([[0, 1, 2, 3, 4, 5]])
  valid = jnp.asarray([[True, True, False, True, True, True]])
  m = np.asarray(attention.causal_mask(q_pos, k_pos, valid))[0]
  np.testing.assert_array_equal(m, [[1, 1, 0, 1, 0, 0], [1, 1, 0, 1, 1, 0], [1, 1, 0, 1, 1, 1]])


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_prefix_shapes_fail_before_compilation(arch):
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 6))
  run = jax.jit(lambda p, pre: model.apply({"params": p}, tokens, prefix=pre))
  wrong_layers = Prefix(hidden=jnp.zeros((cfg.num_layers + 1, 3, cfg.hidden_size)))
  with pytest.raises(PrefixShapeError, match=r"expected \(3, 3, 32\)"):
    run(params, wrong_layers)
  wrong_batch = Prefix(hidden=jnp.zeros((3, cfg.num_layers, 3, cfg.hidden_size)))
  with pytest.raises(PrefixShapeError, match="batch=2"):
    run(params, wrong_batch)
  too_long = Prefix(hidden=jnp.zeros((cfg.num_layers, 60, cfg.hidden_size)))
  with pytest.raises(PrefixShapeError, match=r"60 \+ sequence length 6 = 66 exceeds .* 64"):
    run(params, too_long)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("form", ["hidden", "kv", "prompt"])
def test_prefix_passed_with_a_cache_equals_uncached_run(arch, form):
  """model.apply(prefix=..., cache=...) writes the prefix into the cache once; continuing
  token by token gives the logits of the full uncached run."""
  from prefix_jax.models import KVCache
  cfg, model, params = tiny_model(arch)
  tokens = _tokens(cfg, (2, 7))
  hidden = _hidden(cfg, 3)
  prefix = {"hidden": Prefix(hidden=hidden), "prompt": Prefix(prompt=hidden[0]),
            "kv": _kv_by_hand(arch, cfg, params, hidden)}[form]
  full = apply(model, {"params": params}, tokens, prefix=prefix)
  cache = KVCache.init(cfg, 2, 16)
  first, cache = apply(model, {"params": params}, tokens[:, :4], prefix=prefix, cache=cache)
  outs = [first]
  for t in range(4, 7):
    out, cache = apply(model, {"params": params}, tokens[:, t:t + 1], cache=cache)
    outs.append(out)
  np.testing.assert_allclose(jnp.concatenate(outs, 1), full, atol=1e-5, rtol=0)
