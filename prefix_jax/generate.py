"""Offline generation for many tasks at once: requests of different prefixes share batches.

  python -m prefix_jax.generate --model smollm2-135m --prefix e2e=RUN/prefix.safetensors \
      --prefix webnlg=RUN2/prefix.safetensors --input requests.jsonl --output out.jsonl

Each input line is a JSON object: `prefix` (a name given with --prefix, or the --model
argument as given: the backbone without a prefix) and `source` (the task's input text,
formatted as in training), optional `id`, `max_tokens`, `beam_size` (1: greedy) and `stop`
(strings). Each output line: `id`, `prefix`, `text`, `finish_reason`,
`tokens` (generated). Generation stops at the tokenizer's end-of-sequence token. Every line is
checked before anything is decoded; a bad line stops the run with its line number (exit 2).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from tqdm.auto import tqdm

from prefix_jax.decode.dataset import progress_enabled, write_lines_atomic
from prefix_jax.runtime import collect_less, keep_freed_memory
from prefix_jax.serving.engine import Engine, Limits, Request, group
from prefix_jax.serving.errors import PrefixLoadError, ServingError
from prefix_jax.serving.loading import build_engine, parse_prefix_args

_FIELDS = {"id", "prefix", "source", "max_tokens", "beam_size", "stop"}


def parse_request(engine: Engine, row, *, max_tokens: int, beam_size: int) -> Request:
  """One input object -> a checked Request (ServingError naming the field otherwise)."""
  if not isinstance(row, dict):
    raise ServingError("expected a JSON object")
  unknown = sorted(set(row) - _FIELDS)
  if unknown:
    raise ServingError(f"unknown fields {unknown} (known: {sorted(_FIELDS)})")
  for field, kind in (("prefix", str), ("source", str)):
    if not isinstance(row.get(field), kind):
      raise ServingError(f"field '{field}' must be a string", param=field)
  for field in ("max_tokens", "beam_size"):
    if field in row and (not isinstance(row[field], int) or isinstance(row[field], bool)):
      raise ServingError(f"field '{field}' must be an integer", param=field)
  stop = row.get("stop", [])
  stop = [stop] if isinstance(stop, str) else stop
  if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
    raise ServingError("field 'stop' must be a string or a list of strings", param="stop")
  request = Request(prefix=row["prefix"], ids=engine.encode(row["source"]),
                    max_tokens=row.get("max_tokens", max_tokens),
                    num_beams=row.get("beam_size", beam_size), stop=tuple(stop))
  engine.check(request)
  return request


def read_requests(engine: Engine, path, **defaults) -> tuple[list[str], list[Request]]:
  """(ids, requests) of a JSON-lines file; blank lines are skipped."""
  ids, requests = [], []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        requests.append(parse_request(engine, row, **defaults))
      except (json.JSONDecodeError, ServingError) as e:
        raise ServingError(f"{path}:{number}: {str(e).splitlines()[0]}") from None
      ids.append(str(row.get("id", len(ids))))
  if not requests:
    raise ServingError(f"{path}: no requests")
  return ids, requests


def run(engine: Engine, requests: list[Request]) -> tuple[list, float]:
  """Completions in input order, and the decoding wall time (s)."""
  results = [None] * len(requests)
  batches = group(requests, engine.limits.max_batch)
  start = time.perf_counter()
  bar = tqdm(total=len(requests), desc="generate", unit="req", disable=not progress_enabled())
  for idx in batches:
    for i, c in zip(idx, engine.decode([requests[i] for i in idx])):
      results[i] = c
    bar.update(len(idx))
  bar.close()
  return results, time.perf_counter() - start


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", required=True, help="pretrained source or tiny-<arch>")
  parser.add_argument("--prefix", action="append", default=[], metavar="NAME=FILE")
  parser.add_argument("--input", required=True, help="requests, JSON lines")
  parser.add_argument("--output", required=True, help="completions, JSON lines")
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--max-tokens", type=int, default=64, help="default per request")
  parser.add_argument("--beam-size", type=int, default=1, help="default per request")
  parser.add_argument("--seed", type=int, default=0, help="of a tiny-<arch> random backbone")
  args = parser.parse_args(argv)
  try:
    if args.batch_size < 1:
      raise ServingError(f"--batch-size must be >= 1, got {args.batch_size}")
    # Offline, only the model's positions bound a request (checked per line).
    limits = Limits(max_batch=args.batch_size, max_tokens=1 << 30, max_prompt_tokens=1 << 30)
    engine = build_engine(args.model, parse_prefix_args(args.prefix), limits, seed=args.seed)
    ids, requests = read_requests(engine, args.input, max_tokens=args.max_tokens,
                                  beam_size=args.beam_size)
  except (ServingError, PrefixLoadError, OSError, ValueError) as e:
    print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
    return 2
  results, seconds = run(engine, requests)
  write_lines_atomic(args.output, [json.dumps(
      {"id": i, "prefix": r.prefix, "text": c.text, "finish_reason": c.finish_reason,
       "tokens": len(c.tokens)}) for i, r, c in zip(ids, requests, results)])
  total = sum(len(c.tokens) for c in results)
  print(f"{len(results)} requests, {total} tokens in {seconds:.1f} s: "
        f"{total / seconds:.1f} tokens/s (compilation included) -> {args.output}")
  return 0


if __name__ == "__main__":
  keep_freed_memory()  # before JAX starts its threads (see prefix_jax/runtime.py)
  collect_less()  # the imports are done
  sys.exit(main())
