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
  c.update(dict(task="sst2", model="minilm-l6", method="ptuning2"))
  c.prefix.length = 16
  c.optim.learning_rate = 1e-2
  c.train.update(dict(num_epochs=3, batch_size=32, trainable_pattern=head_pattern()))
  c.data.update(dict(max_source_len=66, max_target_len=1, train_split="train",
                     eval_split="validation", test_split="validation"))
  c.decode.update(dict(max_new_tokens=1, batch_size=64))
  return apply_arg(c, arg)
