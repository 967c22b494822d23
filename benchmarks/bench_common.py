"""What the benchmark sections share: model shapes, inputs, the machine, and worker processes.

Every measured configuration runs in its own worker process (`benchmarks.bench_worker`), so
its peak RSS is its own. The parent drives the workers over pipes, one step at a time and in
turn (A B C A B C ...), so that a burst of load from elsewhere on the machine lands on every
configuration alike instead of deciding a ratio; it reports medians over rounds.
This module imports only numpy and the standard library (the parent stays light).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prefix_jax import provenance

# ModelConfig keyword arguments of the benchmarked shapes (random weights).
SMOLLM2_135M = dict(arch="llama", vocab_size=49152, hidden_size=576, num_layers=30, num_heads=9,
                    num_kv_heads=3, intermediate_size=1536, max_positions=2048,
                    tie_embeddings=True, rope_theta=100000.0, norm_eps=1e-5)
GPT2_SMALL = dict(arch="gpt2", vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12,
                  intermediate_size=3072, max_positions=1024, activation="gelu_new",
                  tie_embeddings=True)
# --quick: the same architectures at toy size. GPT-2 keeps its vocabulary so that real E2E
# token ids (GPT-2 BPE) fit.
QUICK_LLAMA = dict(SMOLLM2_135M, vocab_size=512, hidden_size=48, num_layers=1, num_heads=3,
                   num_kv_heads=1, intermediate_size=96, max_positions=256)
QUICK_GPT2 = dict(GPT2_SMALL, hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
                  max_positions=256)

GPT2_EOS = 50256  # GPT-2's <|endoftext|>: separator, EOS and padding in the E2E batches


def kv_dims(shape: dict) -> tuple[int, int, int]:
  """(layers, kv heads, head dim) of a shape dict."""
  heads = shape["num_heads"]
  return (shape["num_layers"], shape.get("num_kv_heads") or heads,
          shape["hidden_size"] // heads)


def random_tokens(vocab: int, batch: int, length: int, seed: int) -> np.ndarray:
  """[batch, length + 1] int32 token ids: inputs are [:, :-1], next-token targets [:, 1:]."""
  return np.random.default_rng(seed).integers(0, vocab, (batch, length + 1)).astype(np.int32)


def prefix_embedding(shape: dict, length: int, seed: int) -> np.ndarray:
  """The prefix values both implementations start from, in peft's layout
  [Lp, L * 2 * Hkv * D] (viewed as [Lp, L, key/value, Hkv, D])."""
  layers, kv_heads, head_dim = kv_dims(shape)
  rng = np.random.default_rng(seed)
  return (0.5 * rng.standard_normal((length, layers * 2 * kv_heads * head_dim))).astype(np.float32)


def peft_to_kv(embedding: np.ndarray, shape: dict) -> dict[str, np.ndarray]:
  """peft's prompt-encoder embedding -> our kv prefix params {'keys', 'values'} [L, Lp, Hkv, D]."""
  layers, kv_heads, head_dim = kv_dims(shape)
  kv = embedding.reshape(embedding.shape[0], layers, 2, kv_heads, head_dim)
  return {"keys": np.ascontiguousarray(kv[:, :, 0].transpose(1, 0, 2, 3)),
          "values": np.ascontiguousarray(kv[:, :, 1].transpose(1, 0, 2, 3))}


def peak_rss_mib() -> float:
  """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# The machine.

def machine_info(argv: list[str]) -> dict:
  """Cores, CPU model, load, library versions and the command (no heavy imports)."""
  info = provenance.machine(("jax", "jaxlib", "flax", "optax", "torch", "transformers", "peft",
                         "numpy"))
  return {**info, "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
          "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.bench", *argv])}


# ---------------------------------------------------------------------------------------------
# Statistics.

def median(xs) -> float:
  return float(statistics.median(xs))


def summarize(xs) -> dict:
  """Median, min, max and count of a list of positive numbers."""
  xs = [float(x) for x in xs]
  return {"median": median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def is_positive_finite(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


# ---------------------------------------------------------------------------------------------
# Worker processes.

class WorkerError(RuntimeError):
  """A worker answered with an error or died (the message carries its traceback / log)."""


class Worker:
  """One `benchmarks.bench_worker` subprocess: `engine` 'jax' or 'torch' picks what it imports.

  Jobs live inside it under a name: `setup(job, kind, **args)`, then `run(job)` measures one
  call. `send` / `recv` are split so several workers can set up at the same time.
  """

  def __init__(self, name: str, engine: str, log_dir: Path, env: dict | None = None):
    self.name = name
    self.log_path = Path(log_dir) / f"worker_{name}.log"
    self._log = open(self.log_path, "w")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_worker", engine], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, **(env or {})})

  def send(self, op: str, **msg) -> None:
    self.proc.stdin.write(json.dumps({"op": op, **msg}) + "\n")
    self.proc.stdin.flush()

  def recv(self) -> dict:
    line = self.proc.stdout.readline()
    if not line:
      self.proc.wait()
      raise WorkerError(f"worker {self.name} exited with {self.proc.returncode}; log "
                        f"{self.log_path}:\n{self._tail()}")
    reply = json.loads(line)
    if not reply.get("ok"):
      raise WorkerError(f"worker {self.name}: {reply.get('error')}")
    return reply

  def call(self, op: str, **msg) -> dict:
    self.send(op, **msg)
    return self.recv()

  def setup(self, job: str, kind: str, **args) -> None:
    self.send("setup", job=job, kind=kind, args=args)

  def _tail(self, n: int = 4000) -> str:
    self._log.flush()
    return self.log_path.read_text()[-n:]

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.send("quit")
        self.proc.wait(timeout=30)
      except (BrokenPipeError, subprocess.TimeoutExpired):
        self.proc.kill()
        self.proc.wait()
    self._log.close()


def wait_all(workers) -> list[dict]:
  """The next reply of each worker (after a `send` / `setup` to each)."""
  return [w.recv() for w in workers]


def interleave(entries: list[tuple[str, Worker, str]], *, warmup: int, rounds: int,
               settle_s: float = 0.1, log=print) -> dict[str, list[dict]]:
  """Runs every (label, worker, job) once per round, in turn, `warmup + rounds` times.

  Returns label -> the replies of the measured rounds (warm-up rounds dropped; each reply
  carries `seconds` and `tokens`, and the first call's `loss` is kept under `first_loss`).
  `settle_s` lets the previous worker's spinning threads go idle before the next one starts.
  """
  out = {label: [] for label, _, _ in entries}
  first, last = {}, {}
  for r in range(warmup + rounds):
    for label, worker, job in entries:
      time.sleep(settle_s)
      last[label] = reply = worker.call("run", job=job)
      first.setdefault(label, reply)
      if r >= warmup:
        out[label].append(reply)
    tag = "warm-up" if r < warmup else f"round {r - warmup + 1}/{rounds}"
    log(f"    {tag}: " + ", ".join(f"{label} {last[label]['seconds']:.3g}s"
                                    for label, _, _ in entries))
  for label in out:
    for reply in out[label]:
      reply["first_loss"] = first[label].get("loss")
  return out


def rate_summary(replies: list[dict]) -> dict:
  """Median seconds per call and median tokens/s over measured rounds."""
  seconds = [r["seconds"] for r in replies]
  rates = [r["tokens"] / r["seconds"] for r in replies]
  return {"seconds": summarize(seconds), "tokens_per_s": summarize(rates),
          "tokens_per_call": replies[0]["tokens"]}
