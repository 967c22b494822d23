"""E2E data-to-text (Li & Liang 2021, Table 6 hyperparameters for prefix-tuning).

Trains on E2E dev (the train file is not available here) and evaluates on test (disjoint MRs).
`--config=configs/e2e.py:model=smollm2-135m,method=prefix,prefix_len=5`
"""
from prefix_jax.train.config_base import apply_arg, base_config


def get_config(arg=None):
  c = base_config()
  c.task = "e2e"
  c.prefix.length = 5
  c.optim.learning_rate = 8e-5
  c.train.num_epochs = 5
  c.train.batch_size = 10
  c.data.train_split = "validation"   # E2E train is missing here: train on dev ...
  c.data.eval_split = "test"          # ... and evaluate on test (disjoint MRs)
  c.data.test_split = "test"
  c.decode.beam_size = 5
  c.decode.max_new_tokens = 100
  return apply_arg(c, arg)
