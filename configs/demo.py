"""`make demo`: prefix-tune SmolLM2-135M on E2E data-to-text for 100 steps on CPU, with BLEU
and ROUGE-L on held-out test MRs before and after (docs/benchmarks.md: what its minutes buy)."""
from prefix_jax.train.config_base import apply_arg, base_config


def get_config(arg=None):
  c = base_config()
  c.task = "e2e"
  c.model = "smollm2-135m"
  c.method = "prefix"
  c.prefix.length = 5
  c.prefix.reparam = "none"
  c.prefix.init = "words"          # the paper's "table-to-text:" activation init
  c.metrics = "bleu+rouge_l"       # what the demo prints; METEOR's Java start-up is skipped
  c.optim.learning_rate = 1e-2     # few steps: a larger step than the paper's 8e-5
  c.optim.warmup_steps = 10
  c.train.batch_size = 4
  c.train.num_steps = 100
  c.train.num_epochs = 0
  c.train.log_every = 25
  c.train.eval_every = 50
  c.train.checkpoint_every = 50
  c.data.train_split = "validation"
  c.data.eval_split = "test"
  c.data.test_split = "test"
  c.data.max_source_len = 64
  c.data.max_target_len = 64
  # Few compiled step shapes (each compile costs as much as many steps; docs/benchmarks.md):
  # rows padded to multiples of 32 tokens, loss positions to multiples of 64.
  c.data.bucket_size = 32
  c.data.loss_pos_multiple = 64
  c.data.num_eval_loss_examples = 32
  c.decode.beam_size = 1
  c.decode.max_new_tokens = 40
  c.decode.num_examples = 24
  c.decode.batch_size = 24         # one batch: each decoding step reads all weights once
  return apply_arg(c, arg)
