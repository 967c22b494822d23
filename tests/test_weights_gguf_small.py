"""GGUF files written here from stories260K (as llama.cpp would: interleaved Q/K rows, llama
SentencePiece vocabulary), then read back: equal to the llama2.c loader, and every bad variant
refused with a one-line error that names the file."""
import shutil

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from prefix_jax.weights import WeightsError, load_pretrained
from test_weights_llama2c import read_raw


def write_gguf(path, raw, hp, *, arch="llama", block_count=None, embedding_length=None,
               head_count=None, tokenizer=True, quant=None, drop=(), bad_shape=None):
  """A llama GGUF of the raw llama2.c arrays. `quant`: type for matrices whose rows are a
  multiple of 32 floats; `drop`: tensor names to leave out; `bad_shape`: a tensor name stored
  with one row too few."""
  w = gguf.GGUFWriter(str(path), arch)
  w.add_block_count(hp["n_layers"] if block_count is None else block_count)
  w.add_context_length(512)
  w.add_embedding_length(hp["dim"] if embedding_length is None else embedding_length)
  w.add_feed_forward_length(raw["w1"].shape[1])
  w.add_head_count(hp["n_heads"] if head_count is None else head_count)
  w.add_head_count_kv(hp["n_kv"])
  w.add_rope_freq_base(10000.0)
  w.add_layer_norm_rms_eps(1e-5)
  if tokenizer:
    pieces, scores = tokenizer
    w.add_tokenizer_model("llama")
    w.add_token_list([p.decode("utf-8", "replace").replace(" ", "\u2581") for p in pieces])
    w.add_token_scores(scores)
    w.add_token_types([2] + [3, 3] + [6] * 256 + [1] * (len(pieces) - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

  def add(name, x):
    if name in drop:
      return
    x = np.ascontiguousarray(x, np.float32)
    if name == bad_shape:
      x = x[:-1]
    if quant is not None and x.ndim == 2 and x.shape[1] % 32 == 0:
      w.add_tensor(name, gguf.quants.quantize(x, quant), raw_dtype=quant)
    else:
      w.add_tensor(name, x)

  add("token_embd.weight", raw["emb"])
  for l in range(hp["n_layers"]):
    b = f"blk.{l}."
    add(b + "attn_norm.weight", raw["rms_att"][l])
    add(b + "attn_q.weight", raw["wq"][l])  # llama2.c rows are already interleaved, as GGUF's
    add(b + "attn_k.weight", raw["wk"][l])
    add(b + "attn_v.weight", raw["wv"][l])
    add(b + "attn_output.weight", raw["wo"][l])
    add(b + "ffn_norm.weight", raw["rms_ffn"][l])
    add(b + "ffn_gate.weight", raw["w1"][l])
    add(b + "ffn_down.weight", raw["w2"][l])
    add(b + "ffn_up.weight", raw["w3"][l])
  add("output_norm.weight", raw["rms_final"])
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return path


@pytest.fixture(scope="module")
def stories(shared_dir):
  ckpt = shared_dir / "models" / "stories260K" / "stories260K.bin"
  hp, raw = read_raw(ckpt)
  return ckpt, hp, raw, load_pretrained(ckpt)


@pytest.fixture(scope="module")
def vocab(stories):
  tok = stories[3][2]
  return tok.backend.pieces, tok.backend.scores


def _tree_allclose(a, b, **kw):
  assert a.keys() == b.keys()
  for k in a:
    if isinstance(a[k], dict):
      _tree_allclose(a[k], b[k], **kw)
    else:
      np.testing.assert_allclose(a[k], b[k], err_msg=k, **kw)


def test_round_trip_equals_llama2c(tmp_path, stories, vocab, cache):
  _, hp, raw, (cfg2c, params2c, tok2c) = stories
  path = write_gguf(tmp_path / "s.gguf", raw, hp, tokenizer=vocab)
  cfg, params, tok = load_pretrained(path)
  assert cfg.replace(extra={}, pad_token_id=None, max_positions=512) == cfg2c.replace(extra={})
  _tree_allclose(params, params2c, rtol=0, atol=0)
  for text in ["Once upon a time, Lily saw a big dog.", "Hello wörld ∑!", ""]:
    assert tok.encode(text) == tok2c.encode(text)
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("quant", [Q.Q8_0, Q.Q4_1, Q.Q4_0, Q.F16])
def test_quantized_round_trip(tmp_path, stories, vocab, quant, cache):
  _, hp, raw, (_, params2c, _) = stories
  path = write_gguf(tmp_path / "q.gguf", raw, hp, tokenizer=vocab, quant=quant)
  _, params, _ = load_pretrained(path)
  # Quantization error only: the Q/K rows are still where the llama2.c loader put them.
  tol = {Q.Q8_0: 0.02, Q.Q4_1: 0.15, Q.Q4_0: 0.2, Q.F16: 1e-3}[quant]
  for l in range(hp["n_layers"]):
    for proj in ("q_proj", "k_proj"):
      ours = params[f"layers_{l}"]["attn"][proj]["kernel"]
      ref = params2c[f"layers_{l}"]["attn"][proj]["kernel"]
      assert np.abs(ours - ref).max() <= tol * np.abs(ref).max()
      assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.98
  _, p16, _ = load_pretrained(path, dtype="bfloat16")
  assert p16["layers_0"]["mlp"]["up_proj"]["kernel"].dtype.name == "bfloat16"


def _error(path, match):
  with pytest.raises(WeightsError) as e:
    load_pretrained(path)
  msg = str(e.value)
  assert "\n" not in msg and str(path) in msg, msg
  assert match in msg, msg
  return e.value


@pytest.mark.parametrize("cut", [10, 200, 3000, -5000, -1])
def test_truncated(tmp_path, stories, vocab, cut, cache):
  _, hp, raw, _ = stories
  full = write_gguf(tmp_path / "full.gguf", raw, hp, tokenizer=vocab)
  data = full.read_bytes()
  bad = tmp_path / "cut.gguf"
  bad.write_bytes(data[:cut] if cut > 0 else data[:len(data) + cut])
  _error(bad, "truncated")


@pytest.mark.parametrize("kw,match", [
    (dict(block_count=4), "has tensor blk.4.attn_norm.weight but llama.block_count is 4"),
    (dict(block_count=6), "parameter layers_5/attn/k_proj/kernel missing"),
    (dict(embedding_length=96), "has shape"),
    (dict(head_count=16), "has shape"),
    (dict(arch="falcon"), "unknown architecture general.architecture='falcon'"),
    (dict(tokenizer=None), "no tokenizer inside"),
    (dict(drop=("blk.2.ffn_up.weight",)), "layers_2/mlp/up_proj/kernel missing"),
    (dict(bad_shape="blk.3.attn_v.weight"), "tensor blk.3.attn_v.weight has shape"),
])
def test_config_does_not_match_tensors(tmp_path, stories, vocab, kw, match, cache):
  _, hp, raw, _ = stories
  kw = {"tokenizer": vocab, **kw}
  _error(write_gguf(tmp_path / "bad.gguf", raw, hp, **kw), match)


def test_not_gguf(tmp_path, cache):
  bad = tmp_path / "x.gguf"
  bad.write_bytes(b"GGUX" + b"\0" * 100)
  _error(bad, "unknown checkpoint format")


def test_gguf_in_directory(tmp_path, stories, vocab, cache):
  _, hp, raw, _ = stories
  folder = tmp_path / "m"
  folder.mkdir()
  write_gguf(folder / "model.gguf", raw, hp, tokenizer=vocab)
  cfg, _, _ = load_pretrained(folder)
  assert cfg.num_layers == hp["n_layers"]
  shutil.copy(folder / "model.gguf", folder / "other.gguf")
  _error(folder, "not exactly one .gguf")


def test_permutation_inverts_llama_cpp_permute():
  from prefix_jax.weights.llama_params import half_to_interleaved, interleaved_to_half
  w = np.random.RandomState(0).randn(3 * 8, 5).astype(np.float32)  # 3 heads, head_dim 8
  # llama.cpp convert_hf_to_gguf.py `permute` (HF -> GGUF), written out here.
  gguf_w = w.reshape(3, 2, 4, 5).swapaxes(1, 2).reshape(w.shape)
  np.testing.assert_array_equal(half_to_interleaved(w, 3), gguf_w)
  np.testing.assert_array_equal(interleaved_to_half(gguf_w, 3), w)
  # Row j of a head pairs with row j + D/2 in HF layout, with row j^1 in GGUF layout.
  np.testing.assert_array_equal(gguf_w[[0, 1]], w[[0, 4]])
