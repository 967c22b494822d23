"""XSUM summarization with BART, the paper's setting (Li & Liang 2021: BART-large, prefix on the
encoder, the decoder and the cross-attention; lr 5e-5, 30 epochs, batch 14, prefix length 100;
decoding beam 6, max 62 new tokens, min 11, length penalty 1, no repeated trigram).

`--config=configs/xsum.py:model=/path/to/bart-large` (an HF BART directory with config.json,
model.safetensors and tokenizer.json; the default hub name needs the network). XSUM's files
are read from <PREFIX_JAX_SHARED>/data/xsum (see data/builders/xsum.py);
`data.split_scheme` = news_to_sports | within_news picks the paper's extrapolation splits.
The decoder-only variant is configs/xsum_decoder.py.
"""
from prefix_jax.train.config_base import apply_arg, base_config


def paper_config():
  """The paper's XSUM hyperparameters, before the `key=value` argument."""
  c = base_config()
  c.task = "xsum"
  c.model = "facebook/bart-large"
  c.prefix.length = 100
  c.optim.learning_rate = 5e-5
  c.train.update(dict(num_epochs=30, batch_size=14))
  c.data.update(dict(max_source_len=512, max_target_len=64))
  c.decode.update(dict(beam_size=6, max_new_tokens=62, min_length=11, length_penalty=1.0,
                       no_repeat_ngram_size=3, ban_newlines=False))
  return c


def get_config(arg=None):
  return apply_arg(paper_config(), arg)
