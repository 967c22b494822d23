"""Fixed evaluation subsets (`decode.subset=spread`): equal shares per stratum, evenly spaced
over the whole split, deterministic; WebNLG's seen and unseen categories in equal shares."""
import collections

import ml_collections
import pytest

from prefix_jax.data.subsets import evenly_spaced, spread
from prefix_jax.errors import ConfigError
from prefix_jax.train import data as train_data


def test_spread_takes_equal_shares_evenly_spaced_in_order():
  items = list(range(100))
  strata = ["a" if i < 80 else "b" for i in items]
  got = spread(items, 10, strata)
  assert got == sorted(got)
  assert collections.Counter(strata[i] for i in got) == {"a": 5, "b": 5}
  a = [i for i in got if i < 80]
  assert a == [8, 24, 40, 56, 72]          # spans the stratum, not its first five
  assert spread(items, 10, strata) == got  # deterministic


def test_a_short_stratum_gives_its_share_to_the_others():
  strata = ["s"] * 2 + ["l"] * 20
  got = spread(list(range(22)), 10, strata)
  assert len(got) == 10 and {0, 1} <= set(got)


def test_spread_without_strata_and_edges():
  assert spread(list(range(10)), 0) == list(range(10))
  assert spread(list(range(3)), 5) == [0, 1, 2]
  assert evenly_spaced(10, 2) == [2, 7]
  with pytest.raises(ValueError, match="3 strata labels for 2 items"):
    spread([1, 2], 1, [0, 0, 0])


def _config(task, split, **decode):
  c = ml_collections.ConfigDict(dict(task=task, data=dict(split_scheme="standard"),
                                     decode=dict(num_examples=0, subset="first")))
  c.decode.update(decode)
  return c


def test_webnlg_subset_holds_seen_and_unseen_in_equal_shares(shared_dir):
  config = _config("webnlg", "test", num_examples=40, subset="spread")
  _, records = train_data._eval_records(config, "test")
  strata = train_data._strata(config, "test", records)
  assert len(records) == 40 and sum(strata) == 20
  _, first = train_data._eval_records(_config("webnlg", "test", num_examples=40), "test")
  assert [r.id for r in first] != [r.id for r in records]


def test_unknown_subset_is_a_config_error(shared_dir):
  with pytest.raises(ConfigError, match="decode.subset='best'"):
    train_data._eval_records(_config("e2e", "test", num_examples=4, subset="best"), "test")
