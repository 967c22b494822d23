"""XSUM summarization with BART, the paper's setting (Li & Liang 2021: BART-large, prefix on the
encoder, the decoder and the cross-attention; lr 5e-5, 30 epochs, batch 14, prefix length 100;
decoding beam 6, max 62 new tokens, min 11, length penalty 1, no repeated trigram).

`--config=configs/xsum.py:model=/path/to/bart-large` (an HF BART directory with config.json,
model.safetensors and tokenizer.json; the default hub name needs the network). XSUM's files
are read from <PREFIX_JAX_SHARED>/data/xsum (see data/builders/xsum.py).
The decoder-only variant is configs/xsum_decoder.py.
"""
from prefix_jax.train.config_base import apply_arg, base_config


def get_config(arg=None):
  c = base_config()
  c.task = "xsum"
  c.model = "facebook/bart-large"
  c.prefix.length = 100
  c.optim.learning_rate = 5e-5
  c.train.num_epochs = 30
  c.train.batch_size = 14
  c.data.max_source_len = 512
  c.data.max_target_len = 64
  c.decode.beam_size = 6
  c.decode.max_new_tokens = 62
  c.decode.min_length = 11
  c.decode.length_penalty = 1.0
  c.decode.no_repeat_ngram_size = 3
  c.decode.ban_newlines = False
  return apply_arg(c, arg)
