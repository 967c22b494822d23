"""P-tuning v2 on an encoder: prefix + classification head trained, the rest bitwise frozen."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from prefix_jax.models import ModelConfig, build_model
from prefix_jax.models.bert import HEAD_PARAMS
from prefix_jax.prefixes import PrefixSpec, init_prefix
from prefix_jax.train.loss import classification_loss
from prefix_jax.train.optim import build_optimizer
from prefix_jax.train.step import init_state, make_train_step, merge_backbone, split_backbone

CFG = ModelConfig(arch="bert", vocab_size=61, hidden_size=32, num_layers=2, num_heads=4,
                  intermediate_size=64, max_positions=64, type_vocab_size=2, num_labels=2,
                  activation="gelu", norm_eps=1e-12)


def test_prefix_and_head_learn_while_the_encoder_stays_frozen():
  model = build_model(CFG)
  backbone = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"]
  spec = PrefixSpec(method="kv", length=4, init_std=0.5)
  prefix = init_prefix(spec, CFG, jax.random.PRNGKey(1))
  rs = np.random.RandomState(0)
  batch = {"inputs": jnp.asarray(rs.randint(3, 61, (8, 9))), "mask": jnp.ones((8, 9), bool),
           "labels": jnp.asarray(rs.randint(0, 2, (8,)))}
  pattern = "^(" + "|".join(HEAD_PARAMS) + ")/"
  head, frozen = split_backbone(backbone, pattern)
  assert set(head) == {"classifier/kernel", "classifier/bias"}
  before = {k: np.asarray(v) for k, v in traverse_util.flatten_dict(backbone, sep="/").items()}
  optimizer = build_optimizer(ml_collections.ConfigDict(
      {"name": "adam", "learning_rate": 5e-2, "schedule": "constant"}), total_steps=60)
  loss_fn = functools.partial(classification_loss, model=model, spec=spec)
  state = init_state({"prefix": prefix, "backbone": head}, optimizer)
  step = jax.jit(make_train_step(loss_fn, optimizer))
  losses = []
  for _ in range(60):
    state, m = step(state, frozen, batch, None)
    losses.append(float(m["loss"]))
  assert losses[-1] < 0.3 * losses[0], losses
  final = traverse_util.flatten_dict(merge_backbone(frozen, state.trainable["backbone"]), sep="/")
  for name, value in before.items():
    same = np.array_equal(np.asarray(final[name]), value)
    assert same != name.startswith("classifier/"), name  # head moved, everything else frozen
  loss, metrics = loss_fn(state.trainable["prefix"], merge_backbone(
      frozen, state.trainable["backbone"]), batch)
  assert float(metrics["accuracy"]) == 1.0


def test_head_file_holds_the_head_only_and_loads_back(tmp_path):
  """Fine-tuning trains every leaf; its head file still holds the classifier alone (the rest is
  the method's export), and reading it back puts exactly those leaves in place."""
  from safetensors.numpy import load_file
  from prefix_jax.train.heads import export_trained_head, load_head
  backbone = jax.jit(build_model(CFG).init)(jax.random.PRNGKey(0),
                                             jnp.zeros((1, 4), jnp.int32))["params"]
  trained = {k: np.asarray(v) + 1.0 for k, v in
             traverse_util.flatten_dict(backbone, sep="/").items()}
  path = export_trained_head(tmp_path, CFG, trained)
  assert set(load_file(str(path))) == {"classifier/kernel", "classifier/bias"}
  loaded = traverse_util.flatten_dict(load_head(tmp_path, backbone), sep="/")
  for name, value in traverse_util.flatten_dict(backbone, sep="/").items():
    moved = not np.array_equal(np.asarray(loaded[name]), np.asarray(value))
    assert moved == name.startswith("classifier/"), name
  decoder = CFG.replace(arch="llama")
  assert export_trained_head(tmp_path / "d", decoder, trained) is None
