"""Per method, on tiny GPT-2 and LLaMA (and BERT/BART for the added-parameter forward): after a
few training steps only that method's parameters changed (every other backbone array bitwise
equal to a copy taken before), the optimizer state has their shapes only, and the loss fell."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from prefix_jax.methods import MethodError, build_method
from prefix_jax.train.method_run import prepare
from prefix_jax.prefixes import count_params
from prefix_jax.train.config_base import apply_arg, base_config
from prefix_jax.train.step import init_state, make_train_step, merge_backbone
from tiny import tiny_model

CASES = [(arch, m) for arch in ("gpt2", "llama")
         for m in ("finetune", "finetune_top2", "bitfit", "lora", "adapter", "llama_adapter")
         if not (arch == "llama" and m == "bitfit")]


def _config(method, **kw):
  c = apply_arg(base_config(), f"method={method}")
  c.lora.targets = "q,k,v,o,up,down"
  c.llama_adapter.layers = 2
  c.adapter.dim = 4
  for k, v in kw.items():
    node, *path = k.split(".")
    c[node][path[0]] = v
  return c


def _batch(cfg):
  rs = np.random.RandomState(0)
  inputs = rs.randint(0, cfg.vocab_size, (4, 12))
  weights = np.zeros((4, 12), np.float32)
  weights[:, 6:] = 1.0
  return {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(np.roll(inputs, -1, 1)),
          "weights": jnp.asarray(weights), "mask": jnp.ones((4, 12), bool)}


def _train(arch, method, steps=5):
  cfg, model, backbone = tiny_model(arch)
  backbone = jax.tree_util.tree_map(jnp.array, backbone)  # a copy: the step donates its leaves
  before = {k: np.array(v) for k, v in traverse_util.flatten_dict(backbone, sep="/").items()}
  m = build_method(_config(method), cfg, backbone)
  prep = prepare(m, model, backbone, jax.random.PRNGKey(1))
  init = jax.tree_util.tree_map(np.array, prep.trainable)
  optimizer = optax.adam(1e-2)
  state = init_state(prep.trainable, optimizer)
  step = jax.jit(make_train_step(prep.loss_fn, optimizer), donate_argnums=(0,))
  losses, batch = [], _batch(cfg)
  for _ in range(steps):
    state, metrics = step(state, prep.frozen, batch, None)
    losses.append(float(metrics["loss"]))
  return m, prep, init, state, before, losses


@pytest.mark.parametrize("arch,method", CASES)
def test_only_the_methods_parameters_change(arch, method):
  m, prep, init, state, before, losses = _train(arch, method)
  assert losses[-1] < losses[0] - 1e-4, losses
  used = traverse_util.flatten_dict(merge_backbone(prep.frozen, state.trainable["backbone"]),
                                    sep="/")
  trained = set(state.trainable["backbone"])
  assert set(used) == set(before)
  for k, v in used.items():
    if k not in trained:
      np.testing.assert_array_equal(np.asarray(v), before[k], err_msg=k)
  changed = {k for k in trained if not np.array_equal(np.asarray(used[k]), before[k])}
  if method == "finetune_top2":  # the top 2 of 3 blocks train; block 0 and the rest do not
    assert trained and all(k.split("/")[0][-1] in "12" for k in trained), sorted(trained)
  if method == "bitfit":
    assert trained and all(k.endswith("/bias") for k in trained)
  if method in ("lora", "adapter", "llama_adapter"):
    assert not trained and "delta" in state.trainable
    moved = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != np.asarray(b))),
                                   init["delta"], state.trainable["delta"])
    assert any(jax.tree_util.tree_leaves(moved))
  else:
    assert changed, "no trained leaf moved"
  # Optimizer state: two Adam moments with exactly the trained leaves' shapes.
  shapes = sorted(np.shape(x) for x in jax.tree_util.tree_leaves(state.trainable))
  opt = sorted(np.shape(x) for x in jax.tree_util.tree_leaves(state.opt_state) if np.ndim(x))
  assert opt == sorted(shapes * 2)


@pytest.mark.parametrize("method,kw,words", [
    ("bitfit", {}, "bitfit"), ("adapter", {"adapter.dim": 0}, "adapter size"),
    ("lora", {"lora.targets": "q,gate"}, "'gate'"), ("lora", {"lora.targets": "q,x"}, "'x'"),
    ("llama_adapter", {"llama_adapter.layers": 9}, "llama_adapter.layers"),
    ("finetune_top", {"finetune.top_layers": 0}, "top_layers")])
def test_bad_method_settings_fail_in_one_line(method, kw, words):
  arch = "llama" if method == "bitfit" else "gpt2"
  cfg, _, backbone = tiny_model(arch)
  with pytest.raises(MethodError, match=words) as e:
    build_method(_config(method, **kw), cfg, backbone)
  assert "\n" not in str(e.value)


def test_adapter_share_sets_the_size():
  cfg, model, backbone = tiny_model("gpt2")
  m = build_method(_config("adapter", **{"adapter.share": 0.03}), cfg, backbone)
  delta = prepare(m, model, backbone, jax.random.PRNGKey(0)).trainable["delta"]
  share = count_params(delta) / count_params(backbone)
  assert abs(share - 0.03) < 0.01, share
