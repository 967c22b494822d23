"""Throughput of the host-side pipeline: tokenization, then batching. Printed, never asserted.

  python -m benchmarks.data_pipeline --task e2e --train_split validation
"""
from __future__ import annotations

import argparse
import time

from prefix_jax.data.encode import encode_examples
from prefix_jax.data.iterator import TrainIterator
from prefix_jax.data.tasks import load_task
from prefix_jax.weights import gpt2_tokenizer


def benchmark_pipeline(task: str = "e2e", *, train_split: str = "validation", tokenizer=None,
                       batch_size: int = 8, max_length: int = 512, num_batches: int = 500,
                       data_dir=None) -> dict[str, float]:
  """Prints and returns examples/s for tokenization and for batching of one task's train split."""
  tokenizer = tokenizer or gpt2_tokenizer()
  train, _ = load_task(task, train_split=train_split, eval_split=None, data_dir=data_dir)
  t0 = time.perf_counter()
  encoded = encode_examples(train, tokenizer, max_length=max_length)
  t_tok = time.perf_counter() - t0
  it = TrainIterator(encoded, batch_size=batch_size, pad_id=tokenizer.eos_id, seed=0)
  t0 = time.perf_counter()
  for _ in range(num_batches):
    next(it)
  t_batch = time.perf_counter() - t0
  result = {"tokenize_examples_per_s": len(train) / t_tok,
            "batch_examples_per_s": num_batches * batch_size / t_batch}
  print(f"{task}/{train_split}: {len(train)} examples; tokenized "
        f"{result['tokenize_examples_per_s']:,.0f} ex/s; batched "
        f"{result['batch_examples_per_s']:,.0f} ex/s (B={batch_size}, {num_batches} batches)")
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--task", default="e2e")
  parser.add_argument("--train_split", default="validation")
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--num_batches", type=int, default=500)
  args = parser.parse_args()
  benchmark_pipeline(args.task, train_split=args.train_split, batch_size=args.batch_size,
                     num_batches=args.num_batches)


if __name__ == "__main__":
  main()
