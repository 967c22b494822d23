"""SST-2 sentiment with an encoder and a classification head: P-tuning v2 (Liu et al. 2022:
deep prompts, i.e. kv prefixes at every layer, no reparameterization) on a BERT-family model.
The prefix and the head train; the encoder stays frozen. Scored by accuracy.

`--config=configs/sst2_cls.py:model=minilm-l6` (all-MiniLM-L6-v2; any HF BERT directory works).
The label-word (generation) variant for decoders is configs/sst2.py.
"""
from prefix_jax.train.config_base import apply_arg, base_config
from prefix_jax.train.heads import head_pattern


def get_config(arg=None):
  c = base_config()
  c.task = "sst2"
  c.model = "minilm-l6"
  c.method = "ptuning2"
  c.prefix.length = 16
  c.optim.learning_rate = 1e-2
  c.train.num_epochs = 3
  c.train.batch_size = 32
  c.train.trainable_pattern = head_pattern()
  c.data.max_source_len = 66
  c.data.max_target_len = 1
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.test_split = "validation"
  c.decode.max_new_tokens = 1
  c.decode.batch_size = 64
  return apply_arg(c, arg)
