"""The engine and the bank in process: a mixed-prefix batch gives each request exactly what it
gets decoded alone; limits and bad prefix files fail with one line."""
import re

import jax
import pytest

from prefix_jax.prefixes import PrefixSpec, init_prefix
from prefix_jax.serving import Engine, Limits, PrefixBank, PrefixLoadError, Request, ServingError
from prefix_jax.serving.engine import bucket, group
from prefix_jax.train.export import export_prefix
from serving_util import SOURCES, backbone, decode_alone, export_prefixes, write_tiny_llama


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, shared_dir):
  return write_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def files(tmp_path_factory, model_dir):
  # kv and hidden prefixes of two lengths: the bank pads them and converts hidden to kv.
  return export_prefixes(tmp_path_factory.mktemp("prefixes"), 6, model_dir,
                         methods=("kv", "kv", "kv", "hidden"), lengths=(3, 6))


@pytest.fixture(scope="module")
def engine(files, model_dir):
  _, model, params, tok = backbone(model_dir)
  bank = PrefixBank(model, params, backbone_name="bare")
  for name, path in files.items():
    bank.add(name, path)
  return Engine(model, params, tok, bank, Limits(max_batch=8, max_tokens=32))


def test_mixed_batch_equals_each_request_alone(engine, files, model_dir):
  requests = [Request(prefix=f"task{i % 6}", ids=engine.encode(SOURCES[i % 4]),
                      max_tokens=6) for i in range(8)]
  assert group(requests, 8) == [sorted(range(8), key=lambda i: len(requests[i].ids))]
  got = engine.decode(requests)
  texts = set()
  for i, (r, c) in enumerate(zip(requests, got)):
    text, n = decode_alone(model_dir, files[r.prefix], SOURCES[i % 4], r.max_tokens)
    assert (c.text, len(c.tokens)) == (text, n), r
    assert c.finish_reason == ("stop" if n < r.max_tokens else "length")
    assert (c.batch_size, c.batch_prefixes) == (8, 6)
    texts.add(text)
  assert len(texts) >= 6  # the prefixes matter: a wrong row gather would show


@pytest.mark.parametrize("loaded", [True, False], ids=["with-prefixes", "bank-empty"])
def test_requests_without_a_prefix_decode_as_the_bare_backbone(engine, files, model_dir, loaded):
  """`bare` (the backbone's name) is an all-masked bank row, mixed into prefixed batches; with
  no prefix loaded the batch runs with none."""
  _, model, params, tok = backbone(model_dir)
  alone = Engine(model, params, tok, PrefixBank(model, params, backbone_name="bare"),
                 engine.limits)
  eng = engine if loaded else alone
  names = ["bare", "task1", "bare", "task3"] if loaded else ["bare"] * 4
  requests = [Request(prefix=n, ids=eng.encode(SOURCES[i]), max_tokens=6)
              for i, n in enumerate(names)]
  got = eng.decode(requests)
  for i, (r, c) in enumerate(zip(requests, got)):
    path = None if r.prefix == "bare" else files[r.prefix]
    assert (c.text, len(c.tokens)) == decode_alone(model_dir, path, SOURCES[i], 6), r
  assert got[0].text != got[1].text or got[2].text != got[3].text
  assert eng.bank.models()[0] == "bare" and "bare" not in eng.bank.names()
  with pytest.raises(PrefixLoadError, match="is the backbone's name"):
    eng.bank.add("bare", files["task0"])


def test_beam_requests_batch_together_and_match(engine, files, model_dir):
  pairs = [("task0", SOURCES[0]), ("task2", SOURCES[1])]  # one shape alone: compiled once
  requests = [Request(prefix=p, ids=engine.encode(s), max_tokens=6, num_beams=3)
              for p, s in pairs]
  for (p, s), c in zip(pairs, engine.decode(requests)):
    assert (c.text, len(c.tokens)) == decode_alone(model_dir, files[p], s, 6, beams=3)


def test_stop_strings_cut_the_text(engine, files):
  full = engine.decode([Request(prefix="task0", ids=engine.encode(SOURCES[0]), max_tokens=6)])[0]
  assert len(full.text) > 2, full
  stop = full.text[2:4]
  cut = engine.decode([Request(prefix="task0", ids=engine.encode(SOURCES[0]), max_tokens=6,
                               stop=("zzz", stop))])[0]
  assert cut.text == full.text[:full.text.find(stop)] and cut.finish_reason == "stop"


@pytest.mark.parametrize("change, status, message", [
    (dict(prefix="nope"), 404, "unknown prefix 'nope' (loaded: task0, task1, task2, task3, "
                               "task4, task5, bare)"),
    (dict(max_tokens=33), 400, "max_tokens must be in [1, 32], got 33"),
    (dict(num_beams=9), 400, "beam_size must be in [1, 8], got 9"),
    (dict(ids=()), 400, "prompt must have 1 to 1024 tokens, got 0"),
    (dict(ids=(5,) * 230, max_tokens=32), 400,
     "prompt 230 tokens + prefix 6 slots + max_tokens 32 = 268 exceeds the model's 256"),
])
def test_check_names_the_problem(engine, change, status, message):
  request = Request(prefix="task0", ids=(5, 6), max_tokens=4)
  with pytest.raises(ServingError, match=re.escape(message)) as info:
    engine.check(Request(**{**request.__dict__, **change}))
  assert info.value.status == status


def test_shapes_are_bucketed_within_the_positions(engine):
  assert [bucket(n, 16) for n in (1, 3, 5, 16, 17, 40)] == [1, 4, 8, 16, 32, 48]
  snap = engine.bank.snapshot()
  assert engine.shapes([Request("task0", (1,) * 5, 7)] * 3, snap) == (4, 8, 8)
  # 234 + 6 + 16 = 256: the 240-slot source bucket would overflow, so the shape is exact.
  assert engine.shapes([Request("task0", (1,) * 234, 16)], snap) == (1, 234, 16)


def test_bank_refuses_bad_files_with_one_line(tmp_path, engine, model_dir):
  other = export_prefixes(tmp_path, 1, "tiny-gpt2")["task0"]
  with pytest.raises(PrefixLoadError, match="prefix was trained for backbone") as info:
    engine.bank.add("gpt2", other)
  assert "\n" not in str(info.value)
  cfg = backbone(model_dir)[0]
  prompt = PrefixSpec(method="prompt", length=2)
  export_prefix(tmp_path / "p.safetensors", prompt, cfg,
                init_prefix(prompt, cfg, jax.random.PRNGKey(0)))
  with pytest.raises(PrefixLoadError, match="a prompt prefix cannot share a bank with kv"):
    engine.bank.add("prompt", tmp_path / "p.safetensors")
  bank_spec = PrefixSpec(num_tasks=2, length=2)
  export_prefix(tmp_path / "b.safetensors", bank_spec, cfg,
                init_prefix(bank_spec, cfg, jax.random.PRNGKey(0)))
  with pytest.raises(PrefixLoadError, match="holds a bank of 2 prefixes"):
    engine.bank.add("bank", tmp_path / "b.safetensors")
  with pytest.raises(PrefixLoadError, match="no such prefix file"):
    engine.bank.add("missing", tmp_path / "missing.safetensors")
  assert engine.bank.names() == [f"task{i}" for i in range(6)]


def test_generation_stops_at_the_tokenizers_eos_by_default(engine):
  assert engine.eos_id == engine.tokenizer.eos_id == 50256  # GPT-2's <|endoftext|>
  request = Request(prefix="task0", ids=engine.encode(SOURCES[0]), max_tokens=6)
  full = engine.decode([request])[0]
  # The random model never says <|endoftext|>: make a token it does say the end instead.
  eos = full.tokens[2]
  stopping = Engine(engine.model, engine.backbone, engine.tokenizer, engine.bank, engine.limits,
                    eos_id=eos)
  got = stopping.decode([request])[0]
  assert got.tokens == full.tokens[:full.tokens.index(eos)] and got.finish_reason == "stop"
