"""XSUM summarization, decoder-only variant (prefix-tuning: lr 5e-5, 30 epochs, batch 14,
prefix length 100; decoding beam 6, max 62 new tokens, min 11). The paper uses BART-large
(configs/xsum.py); here a decoder-only backbone reads `document <sep> summary`."""
from prefix_jax.train.config_base import apply_arg, base_config


def get_config(arg=None):
  c = base_config()
  c.task = "xsum"
  c.prefix.length = 100
  c.prefix.init_text = "summarize:"
  c.optim.learning_rate = 5e-5
  c.train.num_epochs = 30
  c.train.batch_size = 14
  c.data.max_source_len = 512
  c.data.max_target_len = 64
  c.decode.beam_size = 6
  c.decode.max_new_tokens = 62
  c.decode.min_length = 11
  c.decode.length_penalty = 1.0
  return apply_arg(c, arg)
