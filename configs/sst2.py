"""SST-2 sentiment as generation of a label word ('positive' / 'negative'), scored by accuracy.
Deep prompt tuning (P-tuning v2 style: kv prefixes at every layer, no reparameterization)."""
from prefix_jax.train.config_base import apply_arg, base_config


def get_config(arg=None):
  c = base_config()
  c.task = "sst2"
  c.method = "ptuning2"
  c.prefix.length = 20
  c.prefix.init_text = "sentiment:"
  c.optim.learning_rate = 5e-3
  c.train.num_epochs = 1
  c.train.batch_size = 16
  c.data.max_source_len = 96
  c.data.max_target_len = 4
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.test_split = "test"
  c.decode.beam_size = 1
  c.decode.max_new_tokens = 3
  return apply_arg(c, arg)
