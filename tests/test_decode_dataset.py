"""Dataset generation and request validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prefix_jax.decode import DecodeConfig, beam_search, generate_dataset, greedy_search
from prefix_jax.decode import beam as beam_mod, dataset, greedy as greedy_mod
from prefix_jax.prefixes import Prefix, pad_and_stack
from tiny import CONFIGS, apply, tiny_model


class _WordTokenizer:
  """decode(ids) -> 'w3 w7 ...'; id 9 decodes with a newline inside."""

  def decode(self, ids):
    return " ".join("x\ny" if i == 9 else f"w{i}" for i in ids)


def _batches(cfg):
  rng = np.random.RandomState(0)
  out = []
  for b, valid in ((2, [True, True]), (2, [True, False]), (1, [True])):  # last batch is short
    lengths = rng.randint(2, 6, b)
    mask = np.arange(5)[None] >= 5 - lengths[:, None]
    out.append(dict(inputs=rng.randint(0, cfg.vocab_size, (b, 5)), mask=mask,
                    valid=np.asarray(valid), task=rng.randint(0, 2, b)))
  return out


def test_generate_dataset_writes_one_line_per_valid_example(tmp_path, monkeypatch):
  monkeypatch.setenv("CI", "1")
  assert not dataset.progress_enabled()
  cfg, model, params = tiny_model("gpt2")
  bank = pad_and_stack([
      Prefix(hidden=jax.random.normal(jax.random.PRNGKey(1), (cfg.num_layers, 3, 32))),
      Prefix(hidden=jax.random.normal(jax.random.PRNGKey(2), (cfg.num_layers, 1, 32)))])
  batches = _batches(cfg)
  config = DecodeConfig(max_new_tokens=4, eos_id=7, banned_ids=(8,))
  out_path = tmp_path / "sub" / "predictions.txt"
  preds = generate_dataset(model, params, bank, batches, _WordTokenizer(), out_path=out_path,
                           config=config)

  kv_bank = apply(model, {"params": params}, bank, method=type(model).prefix_to_kv)
  expected = []
  for batch in batches:
    # Row 0 repeated fills a short batch (same shape as the first: no second compilation).
    fill = lambda x: np.concatenate([x, np.repeat(x[:1], 2 - len(x), 0)])
    out = greedy_search(model, params, fill(batch["inputs"]), fill(batch["mask"]),
                        kv_bank.gather(jnp.asarray(fill(batch["task"]))), config=config)
    for row in np.flatnonzero(batch["valid"]):
      ids = np.asarray(out.tokens[row, :out.lengths[row]]).tolist()
      assert 7 not in ids and 8 not in ids
      expected.append(_WordTokenizer().decode(ids).replace("\n", " "))
  assert preds == expected and len(preds) == 4
  assert out_path.read_text(encoding="utf-8") == "".join(p + "\n" for p in expected)
  assert [p.name for p in out_path.parent.iterdir()] == ["predictions.txt"]  # no temp left

  with pytest.raises(ValueError, match="'task'"):
    generate_dataset(model, params, None, batches, _WordTokenizer(), out_path=out_path,
                     config=config)


def test_newline_ids_finds_line_breaks():
  assert dataset.newline_ids(_WordTokenizer(), 12) == (9,)


def test_atomic_write_replaces_whole_file(tmp_path):
  path = tmp_path / "p.txt"
  path.write_text("old\nold\nold\n")
  dataset.write_lines_atomic(path, ["a", "b"])
  assert path.read_text() == "a\nb\n"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["p.txt"]


def _compilations():
  return greedy_mod._greedy._cache_size() + beam_mod._beam._cache_size()


@pytest.mark.parametrize("kw, message", [
    (dict(max_new_tokens=0), "max_new_tokens must be > 0, got 0"),
    (dict(max_new_tokens=-3), "max_new_tokens must be > 0, got -3"),
    (dict(num_beams=0), "num_beams must be > 0, got 0"),
    (dict(num_beams=-1), "num_beams must be > 0, got -1"),
    (dict(length_penalty_style="fairseq"), "length_penalty_style"),
])
def test_bad_config_is_a_one_line_value_error(kw, message):
  with pytest.raises(ValueError, match=message) as err:
    DecodeConfig(**kw)
  assert "\n" not in str(err.value)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_too_long_request_fails_before_compilation(search):
  cfg, model, params = tiny_model("llama")
  assert cfg.max_positions == CONFIGS["llama"].max_positions == 64
  inputs = jnp.zeros((2, 40), jnp.int32)
  prefix = Prefix(hidden=jnp.zeros((cfg.num_layers, 10, cfg.hidden_size)))
  config = DecodeConfig(max_new_tokens=15, num_beams=2)
  before = _compilations()
  with pytest.raises(ValueError, match=r"^source length 40 \+ prefix length 10 \+ "
                     r"max_new_tokens 15 = 65 exceeds the model's max_positions 64$"):
    search(model, params, inputs, None, prefix, config=config)
  with pytest.raises(ValueError, match="= 65 exceeds"):  # no prefix: the source alone
    search(model, params, jnp.zeros((2, 50), jnp.int32), None, None, config=config)
  with pytest.raises(ValueError, match=r"banned_ids \[61\] outside the vocabulary"):
    search(model, params, inputs[:, :4], None, None, config=config.replace(banned_ids=(61,)))
  with pytest.raises(TypeError, match="materialized Prefix"):
    search(model, params, inputs[:, :4], None, {"hidden": prefix.hidden}, config=config)
  assert _compilations() == before

