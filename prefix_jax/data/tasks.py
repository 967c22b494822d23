"""Per-task loading: (training pairs, evaluation records) as the configs use them.

`load_task('e2e', train_split='validation', eval_split='test')` trains on E2E dev and evaluates
on test (here the E2E train file is absent). The linearization follows the paper (see
`linearize.py`); the options below change it.
"""
from __future__ import annotations

import dataclasses
import functools
import logging

from prefix_jax.errors import UserError
from prefix_jax.data import datasets, linearize
from prefix_jax.data.encode import EvalRecord, TextExample
from prefix_jax.data.lowdata import lowdata_subset

log = logging.getLogger(__name__)

DEFAULT_SPLITS = {  # (train, eval)
    "e2e": ("train", "test"),
    "e2e_cleaned": ("train", "test"),
    "webnlg": ("train", "test"),
    "dart": ("train", "test"),
    "xsum": ("train", "test"),
    "sst2": ("train", "validation"),
}
# `data.split_scheme` values per task (Li & Liang 2021, Table 3); 'standard' everywhere.
SPLIT_SCHEMES = {"xsum": datasets.CONFIG_SCHEMES["xsum"], "webnlg": ("standard", "seen_to_unseen")}


class SplitSchemeError(UserError, ValueError):
  """A split scheme the task does not have."""


def check_split_scheme(name: str, scheme: str) -> None:
  known = SPLIT_SCHEMES.get(name, ("standard",))
  if scheme not in known:
    raise SplitSchemeError(f"data.split_scheme {scheme!r} is not one of {known} for task "
                           f"{name!r}")


def _read(name, split, data_dir, scheme, for_eval) -> list[dict]:
  """Raw records of a split under a scheme: XSUM's are TFDS configs; WebNLG's seen_to_unseen
  keeps the seen categories for training and the unseen ones for evaluation."""
  if name in datasets.CONFIG_SCHEMES:
    return datasets.read_split(name, split, data_dir, scheme)
  records = datasets.read_split(name, split, data_dir)
  if scheme == "seen_to_unseen":
    records = [r for r in records if bool(r["unseen"]) == for_eval]
  return records


@dataclasses.dataclass(frozen=True)
class TaskOptions:
  """How records become text.

  e2e_rename_keys: rename E2E keys as the paper (eatType -> Type, priceRange -> price, ...).
  webnlg_leading_sep / webnlg_lowercase_predicate, dart_*: see `linearize.linearize_triples`.
  webnlg_train_lex: 'good' trains on lexicalisations with comment="good" (the paper), 'all'
    on every one. Evaluation always uses all of them as references (as the paper's decoder).
  webnlg_eval_subset: 'all', 'seen' or 'unseen' test categories.
  sst2_labels: target words for label 0 and 1.
  """
  e2e_rename_keys: bool = True
  webnlg_leading_sep: bool = True
  webnlg_lowercase_predicate: bool = False
  dart_leading_sep: bool = False
  dart_lowercase_predicate: bool = True
  webnlg_train_lex: str = "good"
  webnlg_eval_subset: str = "all"
  sst2_labels: tuple[str, str] = ("negative", "positive")


def _group(pairs, split: str, task: int) -> list[EvalRecord]:
  """(source, reference) pairs -> one record per unique source, first-seen order."""
  groups: dict[str, list[str]] = {}
  for src, ref in pairs:
    groups.setdefault(src, []).append(ref)
  return [EvalRecord(f"{split}/{k}", src, tuple(refs), task)
          for k, (src, refs) in enumerate(groups.items())]


def _e2e(records, split, opts, task, for_eval):
  names = linearize.E2E_KEY_NAMES if opts.e2e_rename_keys else None
  pairs = [(linearize.linearize_e2e([(a["key"], a["value"]) for a in r["attributes"]],
                                    key_names=names), r["ref"], r["id"]) for r in records]
  if for_eval:
    return _group([(s, t) for s, t, _ in pairs], split, task)
  return [TextExample(i, s, t, task) for s, t, i in pairs]


def _triples(records, split, opts, task, for_eval, *, refs_key, leading, lower, lex_filter):
  out = []
  for r in records:
    src = linearize.linearize_triples(
        [(t["subject"], t["predicate"], t["object"]) for t in r["triples"]],
        leading_sep=leading, lowercase_predicate=lower)
    refs = r[refs_key]
    if for_eval:
      out.append(EvalRecord(r["id"], src, tuple(x["text"] for x in refs), task))
    else:
      out.extend(TextExample(f"{r['id']}/{j}", src, x["text"], task)
                 for j, x in enumerate(refs) if lex_filter(x))
  return out


def _to_examples(name, records, split, opts: TaskOptions, task, for_eval):
  if name in ("e2e", "e2e_cleaned"):
    return _e2e(records, split, opts, task, for_eval)
  if name == "webnlg":
    if for_eval and opts.webnlg_eval_subset != "all":
      want_unseen = {"seen": False, "unseen": True}[opts.webnlg_eval_subset]
      records = [r for r in records if r["unseen"] == want_unseen]
    keep = ((lambda x: x["comment"] == "good") if opts.webnlg_train_lex == "good"
            else (lambda x: True))
    return _triples(records, split, opts, task, for_eval, refs_key="lex",
                    leading=opts.webnlg_leading_sep, lower=opts.webnlg_lowercase_predicate,
                    lex_filter=keep)
  if name == "dart":
    return _triples(records, split, opts, task, for_eval, refs_key="annotations",
                    leading=opts.dart_leading_sep, lower=opts.dart_lowercase_predicate,
                    lex_filter=lambda x: True)
  if name == "xsum":
    if for_eval:
      return [EvalRecord(r["id"], r["document"], (r["summary"],), task) for r in records]
    return [TextExample(r["id"], r["document"], r["summary"], task) for r in records]
  if name == "sst2":
    unlabeled = [r["id"] for r in records if r["label"] < 0]
    if unlabeled:
      log.warning("sst2 %s: %d unlabeled rows skipped (e.g. %s)", split, len(unlabeled),
                  unlabeled[:3])
    rows = [r for r in records if r["label"] >= 0]
    words = opts.sst2_labels
    if for_eval:
      return [EvalRecord(r["id"], r["sentence"], (words[r["label"]],), task) for r in rows]
    return [TextExample(r["id"], r["sentence"], words[r["label"]], task) for r in rows]
  raise KeyError(f"unknown task {name!r}; known: {sorted(DEFAULT_SPLITS)}")


def load_task(name: str, *, train_split: str | None = "default",
              eval_split: str | None = "default", data_dir=None, task_id: int = 0,
              options: TaskOptions = TaskOptions(), lowdata: tuple[int, int] | None = None,
              split_scheme: str = "standard",
              ) -> tuple[list[TextExample] | None, list[EvalRecord] | None]:
  """(training pairs, evaluation records) of task `name`.

  train_split / eval_split: a split name, 'default' (see `DEFAULT_SPLITS`) or None to skip.
  A split whose raw file is missing raises `SplitUnavailableError` naming the file.
  lowdata: (n, subset) keeps `lowdata_subset(train, n, subset)` of the training pairs.
  split_scheme: see `SPLIT_SCHEMES` (an unknown one raises `SplitSchemeError`).
  """
  if name not in DEFAULT_SPLITS:
    raise KeyError(f"unknown task {name!r}; known: {sorted(DEFAULT_SPLITS)}")
  check_split_scheme(name, split_scheme)
  d_train, d_eval = DEFAULT_SPLITS[name]
  train_split = d_train if train_split == "default" else train_split
  eval_split = d_eval if eval_split == "default" else eval_split
  train = evals = None
  if train_split is not None:
    train = _examples(name, train_split, data_dir, split_scheme, options, task_id, False)
    if lowdata is not None:
      train = lowdata_subset(train, *lowdata)
  if eval_split is not None:
    evals = _examples(name, eval_split, data_dir, split_scheme, options, task_id, True)
  return train, evals


def _examples(name, split, data_dir, scheme, options, task_id, for_eval) -> list:
  """The split's examples, converted once per process for each prepared split (its
  `datasets.split_key`: a dataset prepared again is converted again) and way of converting it:
  a process that runs many short runs (the inline sweep launcher, the tests) converts each
  split once. The examples are frozen; each caller gets its own list."""
  key = datasets.split_key(name, split, data_dir, scheme)
  return list(_converted(key, name, split, data_dir, scheme, options, task_id, for_eval))


@functools.lru_cache(maxsize=16)
def _converted(key, name, split, data_dir, scheme, options, task_id, for_eval) -> tuple:
  del key  # in the cache's key only
  return tuple(_to_examples(name, _read(name, split, data_dir, scheme, for_eval), split, options,
                            task_id, for_eval))
