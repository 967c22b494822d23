"""stories260K (llama2.c): our loader + model reproduce llama2.c's own greedy output.

The reference below is written from run.c's math and reads the checkpoint itself, so the Q/K
rows stay in llama2.c's interleaved RoPE layout: it checks the loader's permutation
independently of the loader.
"""
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import build_model
from prefix_jax.weights import load_pretrained
from prefix_jax.weights.spm import read_llama2c_tokenizer

# Obtained once by compiling karpathy/llama2.c run.c (commit bd18228, greedy path) with
# `gcc -O2 -o run run.c -lm` and running `./run stories260K.bin -z tok512.bin -t 0 -n 60`
# in shared/models/stories260K/ (printed text, without its trailing newline).
RUN_C_TEXT = ("Once upon a time, there was a little girl named Lily. She loved to play outside in "
              "the park. One day, she saw a big, red ball. She wanted to play with it, but it "
              "was too high")
STEPS = 60


@pytest.fixture(scope="module")
def ckpt(shared_dir):
  return shared_dir / "models" / "stories260K" / "stories260K.bin"


@pytest.fixture(scope="module")
def loaded(ckpt):
  return load_pretrained(ckpt)


def read_raw(path):
  """Header dict and run.c's arrays, read directly from the file (no library code)."""
  data = open(path, "rb").read()
  dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", data[:28])
  shared, vocab = vocab > 0, abs(vocab)
  hs = dim // n_heads
  kv_dim = n_kv * hs
  w = np.frombuffer(data, "<f4", offset=28)
  shapes = [("emb", (vocab, dim)), ("rms_att", (n_layers, dim)), ("wq", (n_layers, dim, dim)),
            ("wk", (n_layers, kv_dim, dim)), ("wv", (n_layers, kv_dim, dim)),
            ("wo", (n_layers, dim, dim)), ("rms_ffn", (n_layers, dim)),
            ("w1", (n_layers, hidden, dim)), ("w2", (n_layers, dim, hidden)),
            ("w3", (n_layers, hidden, dim)), ("rms_final", (dim,)),
            ("freq", (2, seq_len, hs // 2))]
  if not shared:
    shapes.append(("wcls", (vocab, dim)))
  raw, off = {}, 0
  for name, shape in shapes:
    n = int(np.prod(shape))
    raw[name] = w[off:off + n].reshape(shape)
    off += n
  assert off == w.size
  if shared:
    raw["wcls"] = raw["emb"]
  hp = dict(dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, vocab=vocab, hs=hs)
  return hp, raw


def run_c_logits(hp, raw, tokens):
  """Logits [T, V] of run.c's forward (float32, interleaved RoPE, GQA) at every position."""
  f32 = np.float32
  t_len, hs, n_heads, n_kv = len(tokens), hp["hs"], hp["n_heads"], hp["n_kv"]

  def rmsnorm(x, w):
    return w * (x / np.sqrt(np.mean(x * x, -1, keepdims=True) + f32(1e-5)))

  def rope(x):  # x [T, heads, hs]; pairs (2j, 2j+1) rotate by pos / 10000^(2j/hs)
    j = np.arange(0, hs, 2, dtype=f32)
    ang = np.arange(t_len, dtype=f32)[:, None] * (f32(1.0) / f32(10000.0) ** (j / f32(hs)))
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = x0 * c - x1 * s, x0 * s + x1 * c
    return out

  x = raw["emb"][tokens].astype(f32)
  causal = np.tril(np.ones((t_len, t_len), bool))
  for l in range(hp["n_layers"]):
    xb = rmsnorm(x, raw["rms_att"][l])
    q = rope((xb @ raw["wq"][l].T).reshape(t_len, n_heads, hs))
    k = rope((xb @ raw["wk"][l].T).reshape(t_len, n_kv, hs))
    v = (xb @ raw["wv"][l].T).reshape(t_len, n_kv, hs)
    k = np.repeat(k, n_heads // n_kv, axis=1)  # head h uses kv head h // kv_mul
    v = np.repeat(v, n_heads // n_kv, axis=1)
    att = np.einsum("thd,shd->hts", q, k) / np.sqrt(f32(hs))
    att = np.where(causal, att, -np.inf)
    att = np.exp(att - att.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    x = x + np.einsum("hts,shd->thd", att, v).reshape(t_len, -1) @ raw["wo"][l].T
    xb = rmsnorm(x, raw["rms_ffn"][l])
    h1, h3 = xb @ raw["w1"][l].T, xb @ raw["w3"][l].T
    x = x + (h1 / (1 + np.exp(-h1)) * h3) @ raw["w2"][l].T
  return rmsnorm(x, raw["rms_final"]) @ raw["wcls"].T


def greedy(next_logits, steps=STEPS, bos=1):
  """run.c's loop: from BOS, argmax each step, stop on BOS; returns tokens after BOS."""
  tokens = [bos]
  for _ in range(steps):
    nxt = int(np.argmax(next_logits(tokens)))
    if nxt == bos:
      break
    tokens.append(nxt)
  return tokens[1:]


@pytest.fixture(scope="module")
def reference_tokens(ckpt):
  hp, raw = read_raw(ckpt)
  return greedy(lambda toks: run_c_logits(hp, raw, toks)[-1])


def test_config_from_header(loaded):
  cfg, params, tok = loaded
  assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size,
          cfg.intermediate_size, cfg.max_positions) == (64, 5, 8, 4, 512, 172, 512)
  assert cfg.tie_embeddings and "lm_head" not in params
  assert params["layers_0"]["attn"]["k_proj"]["kernel"].shape == (64, 32)
  assert params["embed"]["embedding"].dtype == np.float32
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, None)


def test_reference_reproduces_run_c(loaded, reference_tokens):
  _, _, tok = loaded
  assert tok.decode(reference_tokens) == RUN_C_TEXT


def test_our_model_greedy_equals_reference(loaded, reference_tokens):
  cfg, params, tok = loaded
  model = build_model(cfg)
  buf = STEPS + 1
  # Right padding never reaches earlier positions under a causal mask: one compiled shape.
  logits_fn = jax.jit(lambda p, t: model.apply({"params": p}, t))

  def next_logits(tokens):
    ids = np.zeros((1, buf), np.int32)
    ids[0, :len(tokens)] = tokens
    return np.asarray(logits_fn(params, jnp.asarray(ids))[0, len(tokens) - 1])

  ours = greedy(next_logits)
  assert ours == reference_tokens
  assert tok.decode(ours) == RUN_C_TEXT


def test_logits_match_reference(loaded, ckpt):
  cfg, params, _ = loaded
  hp, raw = read_raw(ckpt)
  tokens = [1, 403, 407, 261, 378, 30, 300, 33]
  ours = np.asarray(build_model(cfg).apply({"params": params}, jnp.asarray([tokens])))[0]
  np.testing.assert_allclose(ours, run_c_logits(hp, raw, tokens), atol=1e-4, rtol=0)


def test_permutation_is_not_identity(loaded, ckpt):
  """Guards the test above: the raw (interleaved) Q rows differ from the loaded ones."""
  _, params, _ = loaded
  _, raw = read_raw(ckpt)
  assert not np.allclose(params["layers_0"]["attn"]["q_proj"]["kernel"], raw["wq"][0].T)
  np.testing.assert_array_equal(params["layers_0"]["attn"]["v_proj"]["kernel"], raw["wv"][0].T)


def test_bfloat16_option(ckpt, loaded):
  _, p16, _ = load_pretrained(ckpt, dtype="bfloat16")
  w16 = p16["layers_2"]["mlp"]["down_proj"]["kernel"]
  assert w16.dtype.name == "bfloat16"
  np.testing.assert_allclose(w16.astype(np.float32),
                             loaded[1]["layers_2"]["mlp"]["down_proj"]["kernel"], rtol=1e-2)


# --- tokenizer -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok(shared_dir):
  return read_llama2c_tokenizer(shared_dir / "models" / "stories260K" / "tok512.bin", 512)


def test_encode_follows_run_c(tok):
  # BOS, then the dummy-prefix-merged pieces ' Once', ' upon', ' a', ' time'.
  ids = tok.encode("Once upon a time")
  assert ids[0] == 1 and len(ids) == 5
  assert [tok.backend.pieces[i] for i in ids[1:]] == [b" Once", b" upon", b" a", b" time"]
  assert tok.encode("Once upon a time", bos=False) == ids[1:]
  assert tok.encode("Hi", bos=True, eos=True)[-1] == 2
  assert tok.encode("", bos=False) == []


def test_byte_fallback(tok):
  ids = tok.encode("é∑", bos=False)
  # ' ' dummy prefix, 'é' (a piece of its own), then '∑' (not in the vocabulary) as its three
  # UTF-8 bytes, whose <0xXX> tokens sit at byte value + 3 (after <unk>, <s>, </s>).
  assert [tok.backend.pieces[i] for i in ids] == [b" ", "é".encode("utf-8"), b"<0xE2>", b"<0x88>",
                                          b"<0x91>"]
  assert ids[-3:] == [b + 3 for b in "∑".encode("utf-8")]
  assert tok.decode(ids) == "é∑"


@pytest.mark.parametrize("text", ["Once upon a time, there was a cat.", "Hello wörld! 123",
                                  "Tom said: \"Let's go!\"\nThe end.", "  two spaces", "a"])
def test_round_trip(tok, text):
  assert tok.decode(tok.encode(text)) == text
  assert tok.decode(tok.encode(text, bos=False)) == text


def test_generated_text_encodes_to_generated_tokens(tok, reference_tokens):
  # BPE by score segments run.c's own greedy output exactly as the model produced it.
  assert tok.encode(RUN_C_TEXT) == [1] + reference_tokens
