"""K prefixes as one program vs K sequential runs: wall time including start-up and compilation.

`python -m benchmarks.one_program [--model smollm2-135m] [--lengths 1,5,10,20,40] [--n 100]
[--epochs 5] [--steps 0] [--out FILE.json]`: the low-data setting (E2E, 100 examples) with K
prefix lengths, trained (no decoding) either as K ordinary runs one after another, each its own
process (`python -m prefix_jax.main --noevaluate`), or as one process training the K prefixes
in one compiled step (`prefix_jax.train.multi_run.train_members`). Goal: speed-up >= 2x.
Smoke form: `--model tiny-llama --steps 2 --n 20 --lengths 1,5`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def config_args(args, length: int) -> str:
  steps = f",steps={args.steps},epochs=0" if args.steps else f",epochs={args.epochs}"
  return (f"model={args.model},n={args.n},prefix_len={length},data.num_eval_loss_examples=0,"
          f"train.checkpoint_every=100000{steps}")


def run_sequential(args, lengths, root: Path) -> float:
  start = time.time()
  for length in lengths:
    subprocess.run([sys.executable, "-m", "prefix_jax.main",
                    f"--config=configs/e2e.py:{config_args(args, length)}",
                    f"--workdir={root / f'solo{length}'}", "--noevaluate"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
  return time.time() - start


def run_one_program(args, lengths, root: Path) -> float:
  start = time.time()
  subprocess.run([sys.executable, "-m", "benchmarks.one_program", "--worker", str(root),
                  *sys.argv[1:]], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
  return time.time() - start


def worker(args, lengths, root: Path) -> None:
  """The one-program side, in its own process like each sequential run."""
  from prefix_jax.sweep.grid import load_config
  from prefix_jax.train.multi_run import train_members
  configs = [load_config("configs/e2e.py", config_args(args, n)) for n in lengths]
  train_members(configs, [root / f"member{n}" for n in lengths], root / "group")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="smollm2-135m")
  p.add_argument("--lengths", default="1,5,10,20,40")
  p.add_argument("--n", type=int, default=100, help="training examples (low-data subset)")
  p.add_argument("--epochs", type=int, default=5)
  p.add_argument("--steps", type=int, default=0, help="> 0: this many steps instead of epochs")
  p.add_argument("--out", default="", help="also write the result here (JSON)")
  p.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  lengths = [int(x) for x in args.lengths.split(",")]
  if args.worker:
    worker(args, lengths, Path(args.worker))
    return 0
  with tempfile.TemporaryDirectory() as tmp:
    sequential = run_sequential(args, lengths, Path(tmp))
    one = run_one_program(args, lengths, Path(tmp))
  result = {"model": args.model, "lengths": lengths, "n": args.n, "epochs": args.epochs,
            "steps": args.steps, "sequential_s": round(sequential, 2),
            "one_program_s": round(one, 2), "speedup": round(sequential / one, 2)}
  print(json.dumps(result))
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
