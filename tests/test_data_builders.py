"""TFDS builders against the real files in ../shared/data, prepared once into a tmp data dir."""
import collections
import os
import pickle
import time
from pathlib import Path

import pytest

from prefix_jax.data import datasets, tasks
from prefix_jax.data.sources import DataUnavailableError, SplitUnavailableError
from prefix_jax.data.tasks import TaskOptions, load_task


@pytest.fixture(scope="module", autouse=True)
def _offline():
  # Deterministic wherever the tests run: the manual directory only, never a download.
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("PREFIX_JAX_OFFLINE", "1")
    yield


@pytest.fixture(scope="module")
def data_dir(shared_dir, tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def test_e2e_counts(data_dir):
  train, dev = load_task("e2e", train_split="validation", eval_split="validation",
                         data_dir=data_dir)
  assert len(train) == 4672
  assert len(dev) == 547
  assert sum(len(r.references) for r in dev) == 4672
  _, test = load_task("e2e", train_split=None, eval_split="test", data_dir=data_dir)
  assert len(test) == 630
  assert sum(len(r.references) for r in test) == 4693
  # Train on dev, evaluate on test: the MRs are disjoint.
  assert not {r.source for r in dev} & {r.source for r in test}
  rows = datasets.read_split("e2e", "validation", data_dir)
  assert rows[0]["mr"] == "name[Alimentum], area[city centre], familyFriendly[no]"
  assert rows[0]["attributes"] == [{"key": "name", "value": "Alimentum"},
                                   {"key": "area", "value": "city centre"},
                                   {"key": "familyFriendly", "value": "no"}]


def test_e2e_train_split_unavailable_names_the_file(data_dir):
  with pytest.raises(SplitUnavailableError, match=r"trainset\.csv"):
    load_task("e2e", data_dir=data_dir)
  assert "trainset.csv" in datasets.unavailable_splits("e2e", data_dir)["train"]
  assert datasets.available_splits("e2e", data_dir) == ["test", "validation"]


def test_e2e_cleaned_counts(data_dir):
  rows = datasets.read_split("e2e_cleaned", "validation", data_dir)
  assert len(rows) == 4299
  assert len(datasets.read_split("e2e_cleaned", "test", data_dir)) == 4693


def test_webnlg_counts_and_unseen(data_dir):
  train = datasets.read_split("webnlg", "train", data_dir)
  assert len(train) == 6940
  assert sum(len(e["lex"]) for e in train) == 18102
  dev = datasets.read_split("webnlg", "validation", data_dir)
  assert (len(dev), sum(len(e["lex"]) for e in dev)) == (872, 2268)
  test = datasets.read_split("webnlg", "test", data_dir)
  assert len(test) == 1862
  assert sum(len(e["lex"]) for e in test) == 4928
  unseen = [e for e in test if e["unseen"]]
  assert len(unseen) == 891
  assert sum(len(e["lex"]) for e in unseen) == 2433
  assert {e["category"] for e in unseen} == {
      "Artist", "Athlete", "CelestialBody", "MeanOfTransportation", "Politician"}
  # "seen" means: the category occurs in train.
  assert {e["category"] for e in test if not e["unseen"]} == {e["category"] for e in train}
  # The paper trains on comment="good" lexicalisations only (77 are "toFix").
  pairs, _ = load_task("webnlg", eval_split=None, data_dir=data_dir)
  assert len(pairs) == 18025
  _, unseen_eval = load_task("webnlg", train_split=None, data_dir=data_dir,
                             options=TaskOptions(webnlg_eval_subset="unseen"))
  assert len(unseen_eval) == 891


def test_dart_counts(data_dir):
  _, dev = load_task("dart", train_split=None, eval_split="validation", data_dir=data_dir)
  assert len(dev) == 2768
  assert sum(len(r.references) for r in dev) == 6980
  unavailable = datasets.unavailable_splits("dart", data_dir)
  assert "dart-v1.1.1-full-train.json" in unavailable["train"]


def test_sst2_counts(data_dir):
  train, dev = load_task("sst2", data_dir=data_dir)
  assert len(train) == 67349
  assert len(dev) == 872
  assert len(datasets.read_split("sst2", "test", data_dir)) == 1821
  assert train[0].source == "hide new secretions from the parental units"
  assert train[0].target == "negative"
  assert {r.references[0] for r in dev} == {"negative", "positive"}


def test_prepare_is_cached(data_dir):
  datasets.prepare("webnlg", data_dir)  # prepared by an earlier test or now
  marker = data_dir / "pj_webnlg2017" / "1.0.0" / "dataset_info.json"
  mtime = marker.stat().st_mtime_ns
  t0 = time.perf_counter()
  datasets.prepare("webnlg", data_dir)
  assert time.perf_counter() - t0 < 1.0
  assert marker.stat().st_mtime_ns == mtime


def test_xsum_offline_without_files_fails_clearly(data_dir):
  with pytest.raises(DataUnavailableError) as err:
    datasets.prepare("xsum", data_dir)
  msg = str(err.value)
  assert "XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json" in msg
  assert "bollin.inf.ed.ac.uk" in msg and "EdinburghNLP/XSum" in msg


@pytest.mark.parametrize("name", ["e2e", "webnlg", "dart", "sst2"])
def test_no_files_no_network_fails_clearly(name, tmp_path, monkeypatch):
  empty = tmp_path / "empty_shared"
  empty.mkdir()
  monkeypatch.setenv("PREFIX_JAX_SHARED", str(empty))
  monkeypatch.setenv("PREFIX_JAX_OFFLINE", "1")
  with pytest.raises(DataUnavailableError, match=r"not found in the manual directory .*empty_shared"):
    datasets.prepare(name, tmp_path / "tfds")


def test_a_split_is_read_once_per_process_into_fresh_records(data_dir, monkeypatch):
  reads = []
  real = datasets.tfds.data_source
  monkeypatch.setattr(datasets.tfds, "data_source",
                      lambda *a, **k: reads.append(a) or real(*a, **k))
  first = datasets.read_split("webnlg", "test", data_dir)
  second = datasets.read_split("webnlg", "test", data_dir)
  assert first == second and first[0] is not second[0]
  first[0]["id"] = "changed by a caller"
  assert datasets.read_split("webnlg", "test", data_dir)[0]["id"] != "changed by a caller"
  assert len(reads) <= 1
  info = Path(datasets.prepare("webnlg", data_dir).data_dir) / "dataset_info.json"
  st, before = info.stat(), len(reads)
  os.utime(info, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # prepared again: read again
  again = datasets.read_split("webnlg", "test", data_dir)
  assert again == second and len(reads) == before + 1


def test_a_task_split_is_converted_once_per_process_into_lists_of_its_own(data_dir, monkeypatch):
  """load_task converts a split once per process and way of converting it (options, split
  scheme, training or evaluation); each caller gets its own list; a dataset prepared again is
  converted again."""
  calls = []
  real = tasks._to_examples
  monkeypatch.setattr(tasks, "_to_examples", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
  tasks._converted.cache_clear()

  def train(**kw):
    return load_task("webnlg", train_split="test", eval_split=None, data_dir=data_dir, **kw)[0]

  first, second = train(), train()
  assert first == second and first is not second and len(calls) == 1
  first.clear()
  assert train() == second and len(calls) == 1
  lowered = train(options=TaskOptions(webnlg_lowercase_predicate=True))
  assert lowered != second and len(lowered) == len(second) and len(calls) == 2
  seen = train(split_scheme="seen_to_unseen")  # training keeps the seen categories
  assert 0 < len(seen) < len(second) and len(calls) == 3
  evals = load_task("webnlg", train_split=None, eval_split="test", data_dir=data_dir)[1]
  assert len(evals) < len(second) and len(calls) == 4  # one record per input
  info = Path(datasets.prepare("webnlg", data_dir).data_dir) / "dataset_info.json"
  st = info.stat()
  os.utime(info, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # prepared again
  assert train() == second and len(calls) == 5


def test_another_process_reads_the_decoded_split_and_a_bad_file_is_decoded_again(
    data_dir, monkeypatch):
  """The first read writes `<split>.decoded.pickle` beside the shards; a process with an empty
  memory cache reads it instead of decoding the shards. A torn file or one stamped for another
  preparation is not trusted: the split is decoded again and the file replaced."""
  reads = []
  real = datasets.tfds.data_source
  monkeypatch.setattr(datasets.tfds, "data_source",
                      lambda *a, **k: reads.append(a) or real(*a, **k))
  monkeypatch.setattr(datasets, "_READ_CACHE", collections.OrderedDict())
  first = datasets.read_split("e2e", "test", data_dir)
  folder = Path(datasets.prepare("e2e", data_dir).data_dir)
  decoded = folder / "test.decoded.pickle"
  assert decoded.exists() and not list(folder.glob("*.tmp"))

  def fresh_process_reads():
    monkeypatch.setattr(datasets, "_READ_CACHE", collections.OrderedDict())
    before = len(reads)
    assert datasets.read_split("e2e", "test", data_dir) == first
    return len(reads) - before

  assert fresh_process_reads() == 0
  decoded.write_bytes(decoded.read_bytes()[:100])  # torn
  assert fresh_process_reads() == 1
  assert fresh_process_reads() == 0  # rewritten whole
  stamp, blob = pickle.loads(decoded.read_bytes())
  decoded.write_bytes(pickle.dumps(((stamp[0], stamp[1] - 1, stamp[2]), blob)))  # stale
  assert fresh_process_reads() == 1
