"""DART data-to-text (prefix-tuning: lr 5e-5, 10 epochs, batch 5, prefix length 10).

Only DART dev is available here: train on it, and hold out part of it for evaluation."""
from prefix_jax.train.config_base import apply_arg, base_config


def get_config(arg=None):
  c = base_config()
  c.task = "dart"
  c.prefix.length = 10
  c.optim.learning_rate = 5e-5
  c.train.num_epochs = 10
  c.train.batch_size = 5
  c.data.train_split = "validation[:80%]"
  c.data.eval_split = "validation[80%:]"
  c.data.test_split = "validation[80%:]"
  return apply_arg(c, arg)
