"""The paper's extrapolation splits (Li & Liang 2021, Table 3): XSUM news-to-sports and
within-news (topic read from each article's URL; TFDS configs of pj_xsum), WebNLG
seen-to-unseen categories."""
import pytest

from prefix_jax.data import load_task, read_split
from prefix_jax.data.builders.webnlg import UNSEEN_CATEGORIES
from prefix_jax.data.builders.xsum import url_topic
from prefix_jax.data.tasks import SplitSchemeError
from task_fixtures import TOPICS, shared_with_xsum

N = 30
# Article i's topic: 'uk' for every 7th, else TOPICS cycled (news, sport, business, world, ...).
URL_TOPICS = {i: "uk" for i in range(0, N, 7)}


def _topic(i: int) -> str:
  return URL_TOPICS.get(i, TOPICS[i % len(TOPICS)])


def test_url_topic():
  assert url_topic("http://www.bbc.co.uk/news/world-europe-35000000") == "world"
  assert url_topic("http://www.bbc.com/news/uk-scotland-glasgow-west-1") == "uk"
  assert url_topic("http://www.bbc.co.uk/sport/football/36000000") == "sport"
  assert url_topic("http://www.bbc.co.uk/newsbeat-123") == ""


@pytest.mark.parametrize("scheme,train_ok,test_ok", [
    ("news_to_sports", lambda t: t != "sport", lambda t: t == "sport"),
    ("within_news", lambda t: t in ("world", "uk", "business"),
     lambda t: t not in ("world", "uk", "business", "sport")),
])
def test_xsum_schemes_split_by_url_topic(scheme, train_ok, test_ok, tmp_path, monkeypatch):
  shared_with_xsum(tmp_path, monkeypatch, n=N, url_topics=URL_TOPICS)
  standard_train, standard_test = load_task("xsum", train_split="train", eval_split="test")
  train, test = load_task("xsum", train_split="train", eval_split="test", split_scheme=scheme)
  index = lambda doc_id: int(doc_id) - 30000000
  want_train = [e.id for e in standard_train if train_ok(_topic(index(e.id)))]
  want_test = [r.id for r in standard_test if test_ok(_topic(index(r.id)))]
  assert [e.id for e in train] == want_train and want_train
  assert [r.id for r in test] == want_test and want_test
  assert {r["topic"] for r in read_split("xsum", "test", scheme=scheme)} == {
      _topic(index(i)) for i in want_test}


def test_webnlg_seen_to_unseen(shared_dir):
  train, test = load_task("webnlg", train_split="train", eval_split="test",
                          split_scheme="seen_to_unseen")
  category = {r["id"]: r["category"] for r in read_split("webnlg", "test")}
  assert len(test) == 891 and all(category[r.id] in UNSEEN_CATEGORIES for r in test)
  standard, _ = load_task("webnlg", train_split="train", eval_split=None)
  assert len(train) == len(standard)  # the training categories are all seen ones
  with pytest.raises(SplitSchemeError, match="data.split_scheme 'news_to_sports' is not one"):
    load_task("webnlg", train_split="train", eval_split=None, split_scheme="news_to_sports")
