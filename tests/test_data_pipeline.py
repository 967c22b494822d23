"""Tokenization, batch layout, resumable iteration, host sharding, low-data subsets."""
import json

import numpy as np
import pytest

from prefix_jax.data import batching, lowdata
from prefix_jax.data.builders.e2e import read_e2e_csv
from prefix_jax.data.encode import EvalRecord, TextExample, encode_eval, encode_examples
from prefix_jax.data.iterator import TrainIterator
from prefix_jax.data.linearize import linearize_e2e
from prefix_jax.weights import gpt2_tokenizer

EOT = 50256


@pytest.fixture(scope="module")
def tok(shared_dir):
  return gpt2_tokenizer(shared_dir / "models/gpt2-tokenizer/tokenizer.json")


@pytest.fixture(scope="module")
def e2e_dev(shared_dir):
  rows, _ = read_e2e_csv(shared_dir / "data/e2e/devset.csv", "validation")
  return [TextExample(r["id"], linearize_e2e([(a["key"], a["value"]) for a in r["attributes"]]),
                      r["ref"]) for r in rows]


def test_tokenizer_for_the_pipeline(tok):
  assert tok.eos_id == EOT and tok.bos_id == EOT and tok.pad_id is None  # GPT-2: no pad token
  assert tok.encode(" name : X") == [1438, 1058, 1395]
  assert tok.decode([1438, 1058, 1395, EOT]) == " name : X"  # special tokens left out
  texts = [" name : X", "", "naïve café | area : riverside", " X is a pub."]
  assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_train_batch_layout(tok):
  ex = [TextExample("a", "name : X", "X is a pub."), TextExample("b", "name : Yy | area : riverside", "Hi.", task=3)]
  enc = encode_examples(ex, tok, max_length=64)
  src0, tgt0 = enc.source[0], enc.target[0]
  assert list(src0) == tok.encode(" name : X") + [EOT]
  assert list(tgt0) == tok.encode(" X is a pub.") + [EOT]
  assert tok.decode(np.concatenate([src0, tgt0])) == " name : X X is a pub."
  for side in ("right", "left"):
    b = batching.pack_train(enc.source, enc.target, enc.task, batch_size=4, length=16,
                            pad_id=tok.eos_id, padding_side=side)
    assert set(b) == {"inputs", "targets", "weights", "mask", "prefix_at", "task", "valid"}
    assert b["inputs"].dtype == np.int32 and b["weights"].dtype == np.float32
    assert b["mask"].dtype == bool and b["inputs"].shape == (4, 16)
    for i in range(2):
      full = np.concatenate([enc.source[i], enc.target[i]])
      m = b["mask"][i]
      np.testing.assert_array_equal(b["inputs"][i][m], full[:-1])
      np.testing.assert_array_equal(b["targets"][i][m], full[1:])
      # Weight exactly on target-side next tokens, EOS included.
      np.testing.assert_array_equal(b["targets"][i][b["weights"][i] > 0], enc.target[i])
      assert b["inputs"][i, b["prefix_at"][i]] == enc.target[i][0]
      assert b["inputs"][i, b["prefix_at"][i] - 1] == EOT  # the separator
    if side == "left":
      assert b["mask"][:2, -1].all()
    else:
      assert b["mask"][:2, 0].all()
    np.testing.assert_array_equal(b["task"], [0, 3, 0, 0])
    np.testing.assert_array_equal(b["valid"], [True, True, False, False])
    assert b["weights"][2:].sum() == 0 and not b["mask"][2:].any()


@pytest.mark.filterwarnings("ignore:.*(were dropped|empty target)")
def test_truncation_is_counted(tok):
  long_src = "word " * 100
  ex = [TextExample("ok", "name : X", "short."), TextExample("long", "name : Y", long_src),
        TextExample("huge", long_src, "t."), TextExample("empty", "name : Z", "  ")]
  with pytest.warns(UserWarning, match="1 examples longer than max_length=32 had their target cut"):
    enc = encode_examples(ex, tok, max_length=32)
  assert enc.ids == ["ok", "long"]
  assert enc.report.ids("truncated") == ["long"]
  assert enc.report.ids("too_long") == ["huge"]
  assert enc.report.ids("empty_target") == ["empty"]
  assert len(enc.source[1]) + len(enc.target[1]) == 32
  with pytest.warns(UserWarning):
    dropped = encode_examples(ex, tok, max_length=32, overflow="drop")
  assert dropped.ids == ["ok"] and dropped.report.ids("too_long") == ["long", "huge"]


def _collect(it, n):
  return [next(it) for _ in range(n)]


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_iterator_resume_is_exact(tok, e2e_dev, tmp_path):
  enc = encode_examples(e2e_dev[:300], tok, max_length=128)
  kw = dict(batch_size=16, pad_id=tok.eos_id, seed=7, drop_remainder=False)
  full = TrainIterator(enc, **kw)
  per_epoch = full.batches_per_epoch
  assert per_epoch == 19
  reference = _collect(full, 2 * per_epoch + 5)  # crosses two epoch boundaries
  first = TrainIterator(enc, **kw)
  _collect(first, per_epoch + 3)
  state_file = tmp_path / "data_state.json"
  state_file.write_text(json.dumps(first.get_state()))
  restored = TrainIterator(enc, **kw)
  restored.set_state(json.loads(state_file.read_text()))
  _assert_same(_collect(restored, per_epoch + 2), reference[per_epoch + 3:])
  # Epochs are reshuffled and each covers every example once.
  e0 = np.concatenate([b["inputs"][b["valid"], 0] for b in reference[:per_epoch]])
  assert len(e0) == 300
  assert not np.array_equal(reference[0]["inputs"], reference[per_epoch]["inputs"])
  # The last batch of an epoch is padded with invalid, zero-weight rows.
  last = reference[per_epoch - 1]
  assert last["valid"].sum() == 300 - 18 * 16 and last["weights"][~last["valid"]].sum() == 0
  with pytest.raises(ValueError, match="seed"):
    TrainIterator(enc, **{**kw, "seed": 8}).set_state(first.get_state())


def test_iterator_seeds_buckets_epochs(tok, e2e_dev):
  enc = encode_examples(e2e_dev[:100], tok, max_length=128)
  a = _collect(TrainIterator(enc, batch_size=8, pad_id=0, seed=1), 3)
  b = _collect(TrainIterator(enc, batch_size=8, pad_id=0, seed=1), 3)
  c = _collect(TrainIterator(enc, batch_size=8, pad_id=0, seed=2), 3)
  _assert_same(a, b)
  assert not np.array_equal(a[0]["targets"], c[0]["targets"])
  buckets = (32, 64, 128)
  it = TrainIterator(enc, batch_size=8, pad_id=0, seed=1, buckets=buckets, num_epochs=2)
  batches = list(it)
  assert len(batches) == 2 * (100 // 8)
  assert {x["inputs"].shape[1] for x in batches} <= set(buckets)
  assert all(x["valid"].all() for x in batches)


def test_host_sharding_partitions_global_batches(tok, e2e_dev):
  enc = encode_examples(e2e_dev[:64], tok, max_length=128)
  single = _collect(TrainIterator(enc, batch_size=16, pad_id=0, seed=3), 4)
  hosts = [_collect(TrainIterator(enc, batch_size=8, pad_id=0, seed=3, process_index=i,
                                  process_count=2), 4) for i in range(2)]
  for k in range(4):
    assert hosts[0][k]["inputs"].shape == hosts[1][k]["inputs"].shape
    joined = np.concatenate([hosts[0][k]["inputs"], hosts[1][k]["inputs"]])
    np.testing.assert_array_equal(joined, single[k]["inputs"])


def test_eval_batches(tok):
  recs = [EvalRecord(f"r{i}", f"name : N{i}" + " | area : riverside" * (i % 3), (f"ref {i}", "x"))
          for i in range(5)]
  enc = encode_eval(recs, tok, max_source_length=64)
  batches = list(batching.eval_batches(enc, batch_size=2, pad_id=tok.eos_id, padding_side="left"))
  assert len(batches) == 3
  assert [b.ids for b in batches] == [["r0", "r1"], ["r2", "r3"], ["r4"]]
  assert batches[0].references == [("ref 0", "x"), ("ref 1", "x")]
  last = batches[2].arrays
  np.testing.assert_array_equal(last["valid"], [True, False])
  b0 = batches[0].arrays
  assert (b0["inputs"][:, -1] == EOT).all()  # left padding: every prompt ends with the separator
  np.testing.assert_array_equal(b0["inputs"][0][b0["mask"][0]], enc.source[0])
  with pytest.warns(UserWarning, match="cut to 3 tokens"):
    short = encode_eval(recs, tok, max_source_length=3)
  assert all(len(s) == 4 for s in short.source) and short.report.count("source_truncated") == 5


def test_lowdata_subsets(e2e_dev):
  grid = lowdata.lowdata_grid()
  assert len(grid) == 40 and {g["n"] for g in grid} == {50, 100, 200, 500}
  s0 = lowdata.lowdata_subset(e2e_dev, 50, 0)
  assert len(s0) == 50 and len({e.id for e in s0}) == 50
  assert [e.id for e in s0] == [e.id for e in lowdata.lowdata_subset(e2e_dev, 50, 0)]
  assert {e.id for e in s0} != {e.id for e in lowdata.lowdata_subset(e2e_dev, 50, 1)}
  with pytest.raises(ValueError):
    lowdata.lowdata_subset(e2e_dev[:10], 50, 0)
