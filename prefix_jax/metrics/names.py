"""The metric names of each task's suite, and `config.metrics`: the subset a run scores.

`config.metrics = ""` scores every metric of the task; `"bleu"` or `"bleu+nist"` (names joined
by `+` or spaces: a config argument's commas separate its keys) scores only those. Suites skip
what is not asked for, so `"bleu"` on E2E, WebNLG or DART starts no Java process (METEOR, the
PTB tokenizer): a quick sweep's cells score in a fraction of the time. WebNLG's names are
scored on each subset (`bleu` gives `bleu_seen`, `bleu_unseen`, `bleu_all`).
"""
from __future__ import annotations

import re

from prefix_jax.errors import ConfigError

METRICS: dict[str, tuple[str, ...]] = {
    "e2e": ("bleu", "nist", "meteor", "rouge_l", "cider"),
    "webnlg": ("bleu", "meteor", "ter"),
    "dart": ("bleu", "meteor", "ter"),
    "xsum": ("rouge_1", "rouge_2", "rouge_l"),
    "classification": ("accuracy",),
    "sst2": ("accuracy",),
}


def check_subset(task: str, names) -> frozenset[str] | None:
  """`names` (None: all) as a frozenset, after checking that `task`'s suite has each."""
  if names is None:
    return None
  names = frozenset(names)
  known = METRICS.get(task, ())
  unknown = sorted(names - set(known))
  if unknown or not names:
    what = f"{'+'.join(unknown)} not scored" if unknown else "names no metric"
    raise ConfigError(f"metrics: {what} for task {task!r}: choose from {'+'.join(known)}, or "
                      "'' for all")
  return names


def chosen(named: dict, only: frozenset[str] | None) -> dict:
  """The entries of `named` (scores, or the functions computing them) whose names `only` holds
  (None: all): what a suite computes or keeps under a subset."""
  return {name: value for name, value in named.items() if only is None or name in only}


def config_subset(config) -> frozenset[str] | None:
  """The metrics `config.metrics` asks for (None: all of the task's), checked."""
  text = str(config.get("metrics", "") or "").strip()
  if not text:
    return None
  return check_subset(config.task, [n for n in re.split(r"[+\s]+", text) if n])
