"""Serving many prefixes on one backbone: mixed batches, the HTTP server, and HF + peft.

  python -m benchmarks.serving [--quick] [--out bench/serving.json] [--rounds N]

One random-weight llama checkpoint in HF format (SmolLM2-135M's shape with GPT-2's
tokenizer; `--quick`: a 2-layer toy) and 8 random kv prefixes exported with
`train/export.py`; the workload is 8 tasks x `per_task` requests. Three comparisons:
  mixed:  one batch of 8 requests over 8 prefixes vs the same 8 requests on one prefix.
  server: `prefix_jax.serve` under 16 concurrent HTTP clients vs `prefix_jax.generate`'s
          offline batches on the same requests (tokens/s; the server's p50/p99 latency).
  hf:     HF `generate` + `peft` prefix-tuning, task by task (peft cannot mix prefix-tuning
          adapters in one batch) vs our offline mixed batches.
Every request generates exactly `new_tokens` tokens (`ignore_eos`; HF: min_new_tokens). Timings
follow one warm-up pass (compilation); medians over rounds. Numbers are printed, never asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import jax
import numpy as np
import psutil

from prefix_jax import paths
from prefix_jax.generate import run as run_offline
from prefix_jax.prefixes import PrefixSpec, init_prefix
from prefix_jax.decode import generate
from prefix_jax.prefixes import Prefix
from prefix_jax.serving import Engine, Request
from prefix_jax.serving.engine import Limits
from prefix_jax.serving.loading import build_engine
from prefix_jax.train.export import export_prefix

SHAPES = {  # LlamaConfig fields
    "full": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, intermediate_size=1536),
    "quick": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=128),
}
TASKS, CLIENTS, PREFIX_LEN = 8, 16, 10
WORDS = "name area food price near family friendly rating customer eat type pub coffee".split()


def write_checkpoint(folder: Path, shape: dict) -> str:
  """A random llama in HF format with GPT-2's tokenizer; both stacks load this folder."""
  import torch
  import transformers
  cfg = transformers.LlamaConfig(vocab_size=50257, max_position_embeddings=2048,
                                 tie_word_embeddings=True, bos_token_id=50256,
                                 eos_token_id=50256, **shape)
  torch.manual_seed(0)
  transformers.LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
  (folder / "tokenizer.json").write_bytes(
      paths.shared_path("models", "gpt2-tokenizer", "tokenizer.json").read_bytes())
  return str(folder)


def load(model_dir: str, folder: Path, max_batch: int) -> tuple[Engine, dict[str, str]]:
  """The engine with 8 exported prefixes."""
  engine = build_engine(model_dir, {}, Limits(max_batch=max_batch, max_tokens=1 << 20))
  files = {}
  for i in range(TASKS):
    spec = PrefixSpec(method="kv", length=PREFIX_LEN, init_std=0.5)
    path = folder / f"task{i}.safetensors"
    export_prefix(path, spec, engine.model.cfg,
                  init_prefix(spec, engine.model.cfg, jax.random.PRNGKey(i)))
    engine.bank.add(f"task{i}", path)
    files[f"task{i}"] = str(path)
  return engine, files


def workload(per_task: int, src_words: int, seed: int = 0) -> list[tuple[str, str]]:
  """(prefix name, source text) pairs, tasks interleaved as requests would arrive."""
  rng = np.random.default_rng(seed)
  return [(f"task{i % TASKS}", " ".join(rng.choice(WORDS, src_words)))
          for i in range(TASKS * per_task)]


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def bench_mixed(engine: Engine, pairs, n: int, rounds: int) -> dict:
  """One batch over 8 prefixes (rows gathered from the bank) vs the same 8 sources with one
  shared prefix (task0, no gather), interleaved, 5 times per round (a batch takes tens of
  milliseconds: one timing is noise on a shared machine); tokens/s from median times."""
  mixed = [Request(name, engine.encode(src), n, ignore_eos=True) for name, src in pairs[:TASKS]]
  snapshot = engine.bank.snapshot()
  inputs, mask, names, config = engine.arrays(mixed, snapshot)
  row = snapshot.index["task0"]
  shared = Prefix(keys=snapshot.stack.keys[row], values=snapshot.stack.values[row],
                  mask=snapshot.stack.mask[row])
  runs = {"mixed": lambda: engine.decode(mixed, snapshot),
          "one_prefix": lambda: generate(engine.model, engine.backbone, inputs, mask, shared,
                                         config=config).tokens.block_until_ready()}
  times = {k: [] for k in runs}
  for r in range(5 * rounds + 1):  # round 0 compiles
    for k, fn in runs.items():
      dt = _timed(fn)
      if r:
        times[k].append(dt)
  tps = {k: TASKS * n / statistics.median(v) for k, v in times.items()}
  return {"mixed_tokens_per_s": tps["mixed"], "one_prefix_tokens_per_s": tps["one_prefix"],
          "ratio": tps["mixed"] / tps["one_prefix"]}


def bench_offline(engine: Engine, pairs, n: int, rounds: int) -> float:
  """Tokens/s of `prefix_jax.generate`'s batches over the whole workload (after a warm-up)."""
  requests = [Request(name, engine.encode(src), n, ignore_eos=True) for name, src in pairs]
  run_offline(engine, requests)
  times = [run_offline(engine, requests)[1] for _ in range(rounds)]
  return len(requests) * n / statistics.median(times)


async def _clients(url: str, pairs, n: int) -> tuple[float, list[float], int]:
  """CLIENTS concurrent clients drain the workload; (wall s, latencies s, tokens). aiohttp:
  the clients share the machine's cores with the server, and httpx costs about twice its CPU
  per request."""
  todo = list(pairs)
  latencies, tokens = [], 0

  async def client(http):
    nonlocal tokens
    while todo:
      name, src = todo.pop()
      start = time.perf_counter()
      async with http.post(f"{url}/v1/completions", json={
          "model": name, "prompt": src, "max_tokens": n, "ignore_eos": True}) as r:
        r.raise_for_status()
        body = await r.json()
      latencies.append(time.perf_counter() - start)
      tokens += body["usage"]["completion_tokens"]

  start = time.perf_counter()
  async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
    await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
  return time.perf_counter() - start, latencies, tokens


def bench_server(model_dir: str, files: dict, pairs, n: int, max_batch: int, rounds: int,
                 source_len: int) -> dict:
  """`prefix_jax.serve` in its own process under CLIENTS concurrent clients (batch shapes
  compiled at start-up by `--warmup`)."""
  args = [sys.executable, "-m", "prefix_jax.serve", "--model", model_dir, "--port", "0",
          "--max-batch", str(max_batch), "--max-tokens", str(n),
          "--warmup", f"{source_len}:{n}"]
  for name, path in files.items():
    args += ["--prefix", f"{name}={path}"]
  proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
  try:
    url = proc.stdout.readline().split()[-1]
    asyncio.run(_clients(url, pairs, n))  # warm-up: connections, any shape left over
    warm = httpx.get(f"{url}/v1/stats").json()
    server_cpu = lambda: sum(psutil.Process(proc.pid).cpu_times()[:2])
    cpu = (server_cpu(), time.process_time())
    runs = [asyncio.run(_clients(url, pairs, n)) for _ in range(rounds)]
    cpu = (server_cpu() - cpu[0], time.process_time() - cpu[1])
    stats = httpx.get(f"{url}/v1/stats").json()
  finally:
    proc.terminate()
    proc.wait(timeout=120)
  latencies = [x for r in runs for x in r[1]]
  return {"tokens_per_s": runs[0][2] / statistics.median([r[0] for r in runs]),
          "latency_p50_s": float(np.percentile(latencies, 50)),
          "latency_p99_s": float(np.percentile(latencies, 99)), "clients": CLIENTS,
          # CPU per request of the server process (HTTP, JSON, decoding) and of the clients
          "server_cpu_ms_per_request": 1e3 * cpu[0] / (rounds * len(pairs)),
          "client_cpu_ms_per_request": 1e3 * cpu[1] / (rounds * len(pairs)),
          "mean_batch": ((stats["requests"] - warm["requests"])
                         / max(1, stats["batches"] - warm["batches"])),
          "warm_up_stats": warm, "stats": stats}


def bench_hf(model_dir: str, engine: Engine, pairs, n: int, max_batch: int, rounds: int) -> float:
  """Tokens/s of HF `generate` with one peft prefix-tuning adapter per task, task by task
  (batches of up to `max_batch` of one task), on the same token ids as ours."""
  import peft
  import torch
  import transformers
  model = transformers.LlamaForCausalLM.from_pretrained(model_dir).eval()
  config = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=PREFIX_LEN)
  model = peft.get_peft_model(model, config, adapter_name="task0")
  for i in range(1, TASKS):
    model.add_adapter(f"task{i}", config)
  by_task: dict[str, list] = {}
  for name, src in pairs:
    by_task.setdefault(name, []).append(engine.encode(src))
  pad = engine.tokenizer.eos_id

  def once():
    for name, rows in by_task.items():
      model.set_adapter(name)
      for j in range(0, len(rows), max_batch):
        chunk = rows[j:j + max_batch]
        width = max(map(len, chunk))
        ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in chunk])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in chunk])
        with torch.inference_mode():
          model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                         min_new_tokens=n, do_sample=False, pad_token_id=pad)

  once()
  return len(pairs) * n / statistics.median([_timed(once) for _ in range(rounds)])


TARGETS = (("mixed / one prefix", 0.9), ("server / offline", 0.8), ("ours / HF + peft", 3.0))


def report(r: dict) -> str:
  ratios = [r["mixed"]["ratio"], r["server"]["tokens_per_s"] / r["offline_tokens_per_s"],
            r["offline_tokens_per_s"] / r["hf_peft_tokens_per_s"]]
  r["targets"] = [{"name": name, "goal": goal, "measured": m, "met": m >= goal}
                  for (name, goal), m in zip(TARGETS, ratios)]
  lines = [f"mixed batch {r['mixed']['mixed_tokens_per_s']:.1f} tokens/s, one prefix "
           f"{r['mixed']['one_prefix_tokens_per_s']:.1f}",
           f"offline generate {r['offline_tokens_per_s']:.1f} tokens/s; server "
           f"{r['server']['tokens_per_s']:.1f} (p50 {r['server']['latency_p50_s']:.2f} s, "
           f"p99 {r['server']['latency_p99_s']:.2f} s, {CLIENTS} clients, mean batch "
           f"{r['server']['mean_batch']:.1f}, CPU ms/request: server "
           f"{r['server']['server_cpu_ms_per_request']:.1f}, clients "
           f"{r['server']['client_cpu_ms_per_request']:.1f}); HF + peft "
           f"{r['hf_peft_tokens_per_s']:.1f}"]
  lines += [f"{t['name']:>20}: {t['measured']:.2f}x (goal >= {t['goal']}x: "
            f"{'met' if t['met'] else 'NOT met'})" for t in r["targets"]]
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="toy model, small workload")
  parser.add_argument("--out", default="bench/serving.json")
  parser.add_argument("--rounds", type=int, default=None)
  args = parser.parse_args(argv)
  size = "quick" if args.quick else "full"
  per_task, src_words, n = (4, 6, 8) if args.quick else (8, 20, 32)
  rounds = args.rounds or (5 if args.quick else 3)
  pairs, max_batch = workload(per_task, src_words), 16
  with tempfile.TemporaryDirectory(prefix="prefix_jax_serving_") as tmp:
    tmp = Path(tmp)
    model_dir = write_checkpoint(tmp, SHAPES[size])
    engine, files = load(model_dir, tmp, max_batch)
    results = {"command": " ".join(["python -m benchmarks.serving", *(argv or sys.argv[1:])]),
               "model": size, "requests": len(pairs), "new_tokens": n,
               "mixed": bench_mixed(engine, pairs, n, rounds),
               "offline_tokens_per_s": bench_offline(engine, pairs, n, rounds),
               "server": bench_server(model_dir, files, pairs, n, max_batch, rounds,
                                      max(len(engine.encode(src)) for _, src in pairs)),
               "hf_peft_tokens_per_s": bench_hf(model_dir, engine, pairs, n, max_batch, rounds)}
  print(report(results), flush=True)
  out = Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
