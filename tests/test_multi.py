"""Many prefixes as one program: each member ends equal to its solo run."""
import functools
from pathlib import Path

import jax
import numpy as np
import pytest

from prefix_jax.prefixes import PrefixSpec, init_prefix
from prefix_jax.train.export import load_prefix
from prefix_jax.train.loop import train_and_evaluate
from prefix_jax.train.loss import add_loss_positions, lm_loss
from prefix_jax.train.multi import (MultiConfigError, combine_batches, init_multi_state,
                                    make_multi_step, multi_loss)
from prefix_jax.train.multi_run import train_members
from prefix_jax.train.optim import build_optimizer
from prefix_jax.train.step import init_state, make_train_step
from run_tiny import tiny_config
from tiny import tiny_model

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3


def _batch(rng, rows, length, vocab):
  """Right-padded rows: a source, then target tokens (weights 1), then padding."""
  inputs = rng.integers(0, vocab, (rows, length)).astype(np.int32)
  lens = rng.integers(length // 2, length + 1, rows)
  mask = np.arange(length)[None] < lens[:, None]
  weights = (mask & (np.arange(length)[None] >= 3)).astype(np.float32)
  targets = np.roll(inputs, -1, axis=1)
  return {"inputs": inputs * mask, "targets": targets, "weights": weights, "mask": mask,
          "prefix_at": np.full(rows, 3, np.int32)}


def _optim(lr, clip, steps=STEPS):
  import ml_collections
  return build_optimizer(ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=lr, schedule="linear", warmup_steps=0, weight_decay=0.01,
      grad_clip=clip)), steps)


MEMBERS = [  # different lengths, reparameterizations, learning rates and clipping
    (PrefixSpec(method="kv", length=2, reparam="none"), 3e-2, 1.0),
    (PrefixSpec(method="kv", length=5, reparam="mlp", mlp_hidden=8), 1e-2, 0.0),
    (PrefixSpec(method="kv", length=9, reparam="none", init_std=0.5), 5e-2, 1e-3),
]


def _solo(model, backbone, spec, optimizer, params, batches):
  step = jax.jit(make_train_step(functools.partial(lm_loss, model=model, spec=spec), optimizer))
  state = init_state({"prefix": params, "backbone": {}}, optimizer)
  for b in batches:
    state, _ = step(state, backbone, add_loss_positions(b, groups=1), None)
  return state.trainable["prefix"]


def test_three_lengths_equal_three_solo_runs():
  cfg, model, backbone = tiny_model("llama")
  rng = np.random.default_rng(0)
  # Each member its own data: its own row count and padded length (the same at every step, so
  # that each solo run compiles one step and the combined batches keep one shape).
  data = [[_batch(rng, 2 + k, 10 + 4 * k, cfg.vocab_size) for _ in range(STEPS)]
          for k in range(len(MEMBERS))]
  params = [init_prefix(s, cfg, jax.random.PRNGKey(k)) for k, (s, _, _) in enumerate(MEMBERS)]
  opts = [_optim(lr, clip) for _, lr, clip in MEMBERS]
  loss_fn = functools.partial(multi_loss, model=model, specs=[s for s, _, _ in MEMBERS])
  step = jax.jit(make_multi_step(loss_fn, opts))
  state = init_multi_state(params, opts)
  for s in range(STEPS):
    state, metrics = step(state, backbone, combine_batches([d[s] for d in data]))
  np.testing.assert_allclose(metrics["tokens"], [d[-1]["weights"].sum() for d in data])
  for k, (spec, _, _) in enumerate(MEMBERS):
    solo = _solo(model, backbone, spec, opts[k], params[k], data[k])
    moved = jax.tree_util.tree_map(lambda a, b: np.abs(a - b).max(), solo, params[k])
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-4  # the members did train
    # AdamW divides by sqrt(v): where a gradient is near zero, rounding differences between
    # the one program and the solo one move an element by a small part of the learning rate
    # (2e-6 here; 1.4e-5 seen on one CPU when lengths also changed per step); summing tokens
    # over all members instead of per member (the mutant) moves them by 3e-3 or more.
    for a, b in zip(jax.tree_util.tree_leaves(state.trainable[k]),
                    jax.tree_util.tree_leaves(solo)):
      np.testing.assert_allclose(a, b, atol=1e-4, rtol=0, err_msg=f"member {k}")


def _tiny(task, **kw):
  c = tiny_config(str(ROOT / "configs" / f"{task}.py"), "model=tiny-gpt2",
                  **{"train.num_steps": 2, "train.checkpoint_every": 10,
                     "data.num_eval_loss_examples": 0, "data.num_train_examples": 16, **kw})
  return c


def test_multi_task_equals_single_task_runs(tmp_path, shared_dir):
  configs = [_tiny("e2e", **{"prefix.length": 3}), _tiny("webnlg", **{"prefix.length": 6})]
  solo = []
  for i, c in enumerate(configs):
    train_and_evaluate(c, tmp_path / f"solo{i}")
    solo.append(load_prefix(tmp_path / f"solo{i}" / "prefix.safetensors")[1])
  members = [tmp_path / "m0", tmp_path / "m1"]
  summaries = train_members(configs, members, tmp_path / "group")
  assert [s["step"] for s in summaries] == [2, 2]
  for i, wd in enumerate(members):
    _, params, _ = load_prefix(wd / "prefix.safetensors")
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(solo[i])):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
  # Re-running the finished group resumes from its last checkpoint: nothing changes.
  again = train_members(configs, members, tmp_path / "group")
  assert [s["step"] for s in again] == [2, 2]


def test_members_must_share_backbone():
  a, b = _tiny("e2e"), _tiny("e2e", seed=1)
  with pytest.raises(MultiConfigError, match="one backbone"):
    train_members([a, b], ["x", "y"], "g")
