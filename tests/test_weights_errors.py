"""Bad inputs to `load_pretrained`: one-line errors naming the file; the cache stays untouched."""
import pickle
import shutil
import struct
import time

import numpy as np
import pytest

from prefix_jax.weights import (MissingFileError, OfflineError, PickleRefusedError, WeightsError,
                                hub, load_pretrained)


@pytest.fixture
def stories_copy(shared_dir, tmp_path):
  """A writable copy of stories260K.bin + tok512.bin."""
  src = shared_dir / "models" / "stories260K"
  folder = tmp_path / "stories"
  folder.mkdir()
  for name in ("stories260K.bin", "tok512.bin"):
    shutil.copy(src / name, folder / name)
  return folder / "stories260K.bin"


def _error(source, match, cls=WeightsError):
  with pytest.raises(cls) as e:
    load_pretrained(source)
  msg = str(e.value)
  assert "\n" not in msg, msg
  assert str(source) in msg, msg
  assert match in msg, msg
  return e.value


@pytest.mark.parametrize("cut", [4, 1000, -4])
def test_llama2c_truncated(stories_copy, cut, cache):
  data = stories_copy.read_bytes()
  stories_copy.write_bytes(data[:cut] if cut > 0 else data[:cut])
  _error(stories_copy, "truncated" if cut != 4 else "not a llama2.c checkpoint")


@pytest.mark.parametrize("field,value", [(2, 4), (0, 96), (4, 8)])  # n_layers, dim, n_kv_heads
def test_llama2c_header_does_not_match_weights(stories_copy, field, value, cache):
  data = bytearray(stories_copy.read_bytes())
  struct.pack_into("<i", data, 4 * field, value)
  stories_copy.write_bytes(bytes(data))
  _error(stories_copy, "implies")


def test_llama2c_missing_tokenizer(stories_copy, cache):
  (stories_copy.parent / "tok512.bin").unlink()
  err = _error(stories_copy, "no llama2.c tokenizer beside it", MissingFileError)
  assert isinstance(err, FileNotFoundError)


def test_llama2c_truncated_tokenizer(stories_copy, cache):
  tok = stories_copy.parent / "tok512.bin"
  tok.write_bytes(tok.read_bytes()[:-30])  # cut inside the last tokens
  with pytest.raises(WeightsError) as e:
    load_pretrained(stories_copy)
  assert str(tok) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth"])
def test_torch_pickle_refused(tmp_path, name, cache):
  torch = pytest.importorskip("torch")
  path = tmp_path / name
  torch.save({"w": torch.zeros(2, 2)}, path)
  err = _error(path, "save_pretrained(out_dir, safe_serialization=True)", PickleRefusedError)
  assert "pickle" in str(err)


def test_raw_pickle_refused(tmp_path, cache):
  path = tmp_path / "old.bin"
  path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
  _error(path, "PyTorch pickle refused", PickleRefusedError)


def test_pickle_only_hf_dir_refused(tmp_path, cache):
  folder = tmp_path / "hf"
  folder.mkdir()
  (folder / "config.json").write_text('{"model_type": "llama", "vocab_size": 8, "hidden_size": 8,'
                                      '"num_hidden_layers": 1, "num_attention_heads": 2,'
                                      '"intermediate_size": 16}')
  (folder / "pytorch_model.bin").write_bytes(pickle.dumps({}, protocol=2))
  _error(folder, "safe_serialization=True")


def test_unknown_format_and_missing_path(tmp_path, cache):
  odd = tmp_path / "weights.npz"
  odd.write_bytes(b"\x00" * 64)
  _error(odd, "unknown checkpoint format")
  err = _error(tmp_path / "nope.gguf", "no such file", MissingFileError)
  assert isinstance(err, FileNotFoundError)
  _error(tmp_path, "no config.json")


def test_bad_dtype(stories_copy, cache):
  with pytest.raises(ValueError, match="bfloat16"):
    load_pretrained(stories_copy, dtype="float16")


def test_hub_name_offline_fails_fast(monkeypatch, cache):
  monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
  t0 = time.monotonic()
  err = _error("gpt2-medium", "unreachable", OfflineError)
  assert "offline" in str(err) and time.monotonic() - t0 < 1


def test_hub_reachability_check_is_bounded():
  t0 = time.monotonic()
  assert hub.hub_reachable("unresolvable.invalid", timeout=1.0) is False
  hub.hub_reachable(timeout=1.0)  # either answer, but quickly
  assert time.monotonic() - t0 < 4


def test_llama2c_folder_loads_like_its_bin(stories_copy, cache):
  by_file = load_pretrained(stories_copy)
  by_folder = load_pretrained(stories_copy.parent)
  assert by_folder[0] == by_file[0] and by_folder[2].vocab_size == by_file[2].vocab_size
  np.testing.assert_array_equal(by_folder[1]["embed"]["embedding"],
                                by_file[1]["embed"]["embedding"])
