"""WebNLG 2017 data-to-text (prefix-tuning: lr 5e-5, 5 epochs, batch 5, prefix length 5)."""
from prefix_jax.train.config_base import apply_arg, base_config


def get_config(arg=None):
  c = base_config()
  c.task = "webnlg"
  c.prefix.length = 5
  c.optim.learning_rate = 5e-5
  c.train.num_epochs = 5
  c.train.batch_size = 5
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.test_split = "test"
  return apply_arg(c, arg)
