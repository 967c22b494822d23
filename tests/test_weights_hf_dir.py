"""stories260K written as a HF LLaMA directory (config.json + model.safetensors) from our loaded
params: transformers runs it and reproduces run.c's logits (so the llama2.c loader's Q/K
permutation yields true HF layout), `load_pretrained(dir)` reads it back, and bad directories
fail with one-line errors that leave the cache untouched."""
import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

from prefix_jax.weights import MissingFileError, WeightsError, load_pretrained
from test_weights_llama2c import read_raw, run_c_logits


def write_hf_dir(folder, cfg, params, **config_overrides):
  folder.mkdir(parents=True, exist_ok=True)
  config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
            "num_key_value_heads": cfg.num_kv_heads, "intermediate_size": cfg.intermediate_size,
            "max_position_embeddings": cfg.max_positions, "rms_norm_eps": cfg.norm_eps,
            "rope_theta": cfg.rope_theta, "tie_word_embeddings": cfg.tie_embeddings,
            "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
  config.update(config_overrides)
  (folder / "config.json").write_text(json.dumps(config))
  t = {"model.embed_tokens.weight": params["embed"]["embedding"],
       "model.norm.weight": params["final_norm"]["scale"]}
  for l in range(cfg.num_layers):
    p, pre = params[f"layers_{l}"], f"model.layers.{l}."
    t[pre + "input_layernorm.weight"] = p["attn_norm"]["scale"]
    t[pre + "post_attention_layernorm.weight"] = p["mlp_norm"]["scale"]
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
      t[pre + f"self_attn.{name}.weight"] = p["attn"][name]["kernel"].T
    for name in ("gate_proj", "up_proj", "down_proj"):
      t[pre + f"mlp.{name}.weight"] = p["mlp"][name]["kernel"].T
  save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, str(folder / "model.safetensors"))
  return folder


@pytest.fixture(scope="module")
def stories(shared_dir):
  ckpt = shared_dir / "models" / "stories260K" / "stories260K.bin"
  return ckpt, load_pretrained(ckpt)


def test_transformers_runs_converted_llama2c(tmp_path, stories):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  ckpt, (cfg, params, _) = stories
  folder = write_hf_dir(tmp_path / "hf", cfg, params)
  model = transformers.LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
  tokens = [1, 403, 407, 261, 378, 30, 300, 33, 290]
  with torch.no_grad():
    theirs = model(torch.tensor([tokens])).logits[0].numpy()
  hp, raw = read_raw(ckpt)
  np.testing.assert_allclose(theirs, run_c_logits(hp, raw, tokens), atol=1e-4, rtol=0)


def test_load_hf_dir(tmp_path, shared_dir, stories, cache):
  _, (cfg, params, _) = stories
  folder = write_hf_dir(tmp_path / "hf", cfg, params)
  shutil.copy(shared_dir / "models" / "gpt2-tokenizer" / "tokenizer.json", folder)
  cfg2, params2, tok = load_pretrained(folder)
  assert (cfg2.num_layers, cfg2.num_kv_heads, cfg2.tie_embeddings) == (5, 4, True)
  np.testing.assert_array_equal(params2["layers_4"]["attn"]["k_proj"]["kernel"],
                                params["layers_4"]["attn"]["k_proj"]["kernel"])
  assert tok.encode("Hello world") == [15496, 995]
  _, p16, _ = load_pretrained(folder, dtype="bfloat16")
  assert p16["embed"]["embedding"].dtype.name == "bfloat16"


def _error(source, match, cls=WeightsError):
  with pytest.raises(cls) as e:
    load_pretrained(source)
  msg = str(e.value)
  assert "\n" not in msg and str(source) in msg, msg
  assert match in msg, msg


def test_missing_tokenizer_loads_weights_and_fails_when_used(tmp_path, stories, cache):
  _, (cfg, params, _) = stories
  folder = write_hf_dir(tmp_path / "hf", cfg, params)
  got_cfg, got, tok = load_pretrained(folder)
  assert got_cfg == cfg and not tok
  np.testing.assert_array_equal(got["embed"]["embedding"], params["embed"]["embedding"])
  for use in (lambda: tok.encode("hi"), lambda: tok.decode([1]), lambda: tok.eos_id):
    with pytest.raises(MissingFileError, match="no tokenizer.json") as e:
      use()
    assert str(folder) in str(e.value) and "\n" not in str(e.value)


def test_truncated_safetensors(tmp_path, stories, cache):
  _, (cfg, params, _) = stories
  folder = write_hf_dir(tmp_path / "hf", cfg, params)
  f = folder / "model.safetensors"
  f.write_bytes(f.read_bytes()[:-1000])
  with pytest.raises(WeightsError) as e:
    load_pretrained(folder, with_tokenizer=False)
  assert "\n" not in str(e.value) and str(f) in str(e.value)


@pytest.mark.parametrize("overrides,match", [
    (dict(num_hidden_layers=4), "model.layers.4"),
    (dict(num_hidden_layers=6), "missing"),
    (dict(hidden_size=96), "shape"),
    (dict(model_type="falcon"), "unknown architecture"),
])
def test_config_does_not_match(tmp_path, stories, overrides, match, cache):
  _, (cfg, params, _) = stories
  folder = write_hf_dir(tmp_path / "hf", cfg, params, **overrides)
  with pytest.raises(WeightsError) as e:
    load_pretrained(folder, with_tokenizer=False)
  msg = str(e.value)
  assert "\n" not in msg and str(folder) in msg and match in msg, msg
