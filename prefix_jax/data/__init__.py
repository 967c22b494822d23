"""Data layer: TFDS builders, linearization, tokenization, batching, resumable iteration.

  tokenizer = prefix_jax.weights.gpt2_tokenizer()   # the package's one `Tokenizer` type
  train, evals = load_task("e2e", train_split="validation", eval_split="test")
  enc = encode_examples(train, tokenizer, max_length=512)
  it = TrainIterator(enc, batch_size=8, pad_id=tokenizer.eos_id, seed=0)  # GPT-2: no pad token
  batch = next(it)   # inputs/targets/weights/mask/prefix_at/task/valid, numpy
  for eb in eval_batches(encode_eval(evals, tokenizer, max_source_length=256),
                         batch_size=16, pad_id=tokenizer.eos_id): ...
"""
from prefix_jax.data.batching import EvalBatch, default_buckets, eval_batches, pack_train
from prefix_jax.data.datasets import DATASETS, prepare, read_split
from prefix_jax.data.encode import (EvalRecord, TextExample, encode_eval, encode_examples)
from prefix_jax.data.iterator import TrainIterator
from prefix_jax.data.lowdata import lowdata_grid, lowdata_subset
from prefix_jax.data.report import BadInputReport, CorruptFileError
from prefix_jax.data.sources import DataUnavailableError, SplitUnavailableError
from prefix_jax.data.tasks import TaskOptions, load_task

__all__ = [
    "BadInputReport", "CorruptFileError", "DATASETS", "DataUnavailableError", "EvalBatch",
    "EvalRecord", "SplitUnavailableError", "TaskOptions", "TextExample",
    "TrainIterator", "default_buckets", "encode_eval", "encode_examples", "eval_batches",
    "load_task", "lowdata_grid", "lowdata_subset", "pack_train", "prepare", "read_split",
]
