"""`make bench`: prefix-tuning step speed and memory against full fine-tuning and HF PEFT.

  python -m benchmarks.bench [--quick] [--out bench/results.json] [--rounds N] [--gpu auto|on|off]

Sections (each measured configuration in its own worker process, the compared ones run in
turn, A B C A B C ..., medians over rounds; see `bench_common`):
  1. train   our prefix step vs our full fine-tuning (`split_backbone(backbone, '.*')`, AdamW)
             vs PyTorch full fine-tuning of the HF model; GPT-2-small and SmolLM2-135M shapes,
             random weights, B x T random tokens, fp32: step time, tokens/s, peak RSS.
  2. peft    our prefix step vs HF PEFT prefix-tuning on the same HF checkpoint, same batch and
             prefix values (the step-1 losses must agree to 1e-3: asserted), and on real E2E
             batches (ours: bucketed `TrainIterator`; PEFT: padded to the longest row).
  3. flops   analytic model FLOP/s of our prefix step against measured XLA matmul FLOP/s.
  4. decode  batched greedy decoding tokens/s with a kv prefix in the cache vs without.
  5. gpu     sections 1 and 3 on a GPU in bf16 (MFU), skipped with a reason elsewhere.
Prints a table (machine, command, every number, the targets) and writes the JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import bench_common as common
from benchmarks import bench_flops, bench_gpu, bench_report
from benchmarks.bench_common import Worker, interleave, rate_summary, wait_all
from prefix_jax.runtime import kept_memory_environment

CPU_ENV = {"JAX_PLATFORMS": "cpu"}  # sections 1-4 are CPU measurements even on a GPU machine
# What `prefix_jax.runtime.keep_freed_memory` sets in our processes, as glibc's environment: the
# 'peft_prefix_kept' worker shows what the same allocator setting does for PEFT.
KEPT_MEMORY_ENV = {**CPU_ENV, **kept_memory_environment()}
PEFT_LOSS_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class Sizes:
  """Everything --quick shrinks."""
  gpt2: dict
  llama: dict
  batch: int = 8
  seq_len: int = 128
  prefix_len: int = 10
  e2e_batch: int = 10          # the paper's E2E batch size
  e2e_batches: int = 4         # batches per measured call
  e2e_pack_length: int = 128   # ours packs the same examples into rows of at most this length,
  e2e_pack_length_step: int = 8  # a multiple of this chosen per batch (data.pack_length_step)
  matmul_reps: int = 3
  decode_batch: int = 8
  decode_src: int = 32
  decode_new: int = 32
  rounds: int = 5
  warmup: int = 1
  gpu_steps_per_call: int = 20


FULL = Sizes(gpt2=common.GPT2_SMALL, llama=common.SMOLLM2_135M)
QUICK = Sizes(gpt2=common.QUICK_GPT2, llama=common.QUICK_LLAMA, batch=2, seq_len=16,
              prefix_len=4, e2e_batch=4, e2e_batches=2, e2e_pack_length=128, matmul_reps=2, decode_batch=2,
              decode_src=8, decode_new=4, rounds=1, warmup=1, gpu_steps_per_call=2)


CPU_WORKERS = [(f"{arch}_{label}", engine) for arch, labels in (
    ("gpt2", (("torch_full", "torch"), ("ours_prefix", "jax"), ("ours_full", "jax"),
              ("peft_prefix", "torch"), ("peft_prefix_kept", "torch"), ("matmul", "jax"))),
    ("llama", (("torch_full", "torch"), ("ours_prefix", "jax"), ("ours_full", "jax"))))
    for label, engine in labels] + [("decode", "jax")]


class Bench:
  """Runs the groups of workers; each `group_*` method returns its sections' raw results."""

  def __init__(self, sizes: Sizes, workdir: Path, log=print, prestart: bool = False):
    self.s = sizes
    self.workdir = workdir
    self.log = log
    self._workers: list[Worker] = []
    self._started: dict[str, Worker] = {}
    if prestart:
      # --quick only: every CPU worker imports its libraries at once, up front. That load
      # would disturb measurements of real size, so a full run starts each group's workers
      # when the group begins.
      for name, engine in CPU_WORKERS:
        self._started[name] = self.worker(name, engine)

  def worker(self, name: str, engine: str, env=None) -> Worker:
    if name in self._started:
      return self._started.pop(name)
    w = Worker(name, engine, self.workdir, env=CPU_ENV if env is None else env)
    self._workers.append(w)
    return w

  def close(self, *workers) -> None:
    for w in workers or list(self._workers):
      w.close()
      if w in self._workers:
        self._workers.remove(w)

  def _train_args(self, **kw) -> dict:
    return dict(batch=self.s.batch, seq_len=self.s.seq_len, prefix_len=self.s.prefix_len, **kw)

  def _measure(self, entries, rounds=None) -> dict:
    return interleave(entries, warmup=self.s.warmup, rounds=rounds or self.s.rounds,
                      log=self.log)

  @staticmethod
  def _memory(workers: dict) -> dict:
    return {label: w.call("memory") for label, w in workers.items()}

  def group_train(self, arch: str, with_peft: bool) -> dict:
    """Section 1 for one shape; on GPT-2 also section 2 (random and E2E) and 3's matmuls."""
    shape = getattr(self.s, arch)
    hf_dir = str(self.workdir / f"hf_{arch}")
    self.log(f"[{arch}] starting workers")
    torch_full = self.worker(f"{arch}_torch_full", "torch")
    workers = {"ours_prefix": self.worker(f"{arch}_ours_prefix", "jax"),
               "ours_full": self.worker(f"{arch}_ours_full", "jax")}
    if with_peft:
      workers["peft_prefix"] = self.worker(f"{arch}_peft_prefix", "torch")
      workers["peft_prefix_kept"] = self.worker(f"{arch}_peft_prefix_kept", "torch",
                                                env=KEPT_MEMORY_ENV)
      matmul = self.worker(f"{arch}_matmul", "jax")
    # With PEFT, the PyTorch worker first writes the random-weight HF checkpoint every other
    # worker loads (the step-1 losses must match). Without, each side draws its own random
    # weights of the same shape, and nobody waits for the checkpoint.
    source = {"hf_dir": hf_dir} if with_peft else {"shape": shape}
    torch_full.setup("random", "torch_train", **self._train_args(
        method="full", shape=shape, create=with_peft, hf_dir=hf_dir if with_peft else None))
    info = {"torch_full": torch_full.recv()["info"]} if with_peft else {}
    workers["ours_prefix"].setup("random", "jax_train", **self._train_args(
        method="prefix", **source))
    workers["ours_full"].setup("random", "jax_train", **self._train_args(
        method="full", **source))
    if with_peft:
      for label in ("peft_prefix", "peft_prefix_kept"):
        workers[label].setup("random", "torch_train", **self._train_args(
            method="peft", hf_dir=hf_dir))
      matmul.setup("matmul", "matmul", shape=shape, batch=self.s.batch, seq_len=self.s.seq_len,
                   reps=self.s.matmul_reps)
    order = list(workers)
    for label, reply in zip(order, wait_all(workers.values())):
      info[label] = reply["info"]
    if not with_peft:
      info["torch_full"] = torch_full.recv()["info"]
    workers["torch_full"] = torch_full
    for w in workers.values():
      w.call("reset_peak")
    entries = [(label, w, "random") for label, w in workers.items()]
    if with_peft:
      info["matmul"] = matmul.recv()["info"]
      entries.append(("matmul", matmul, "matmul"))
    self.log(f"[{arch}] train steps, batch {self.s.batch} x {self.s.seq_len}")
    runs = self._measure(entries)
    memory = self._memory(workers)
    out = {"shape": shape, "info": info, "runs": runs, "memory": memory}
    self.close(torch_full, workers["ours_full"], *([matmul] if with_peft else []))
    if with_peft:
      out["e2e"] = self._group_e2e(hf_dir, workers["ours_prefix"], workers["peft_prefix"],
                                   workers["peft_prefix_kept"])
    self.close(*[w for w in workers.values() if w in self._workers])
    return out

  def _group_e2e(self, hf_dir: str, ours: Worker, peft_w: Worker, kept: Worker) -> dict:
    from benchmarks.bench_peft import e2e_batches
    from benchmarks.bench_train import save_batches
    padded_path, packed_path = self.workdir / "e2e_padded.npz", self.workdir / "e2e_packed.npz"
    batches = e2e_batches(self.s.e2e_batch, self.s.e2e_batches)
    packed = e2e_batches(self.s.e2e_batch, self.s.e2e_batches,
                         pack_length=self.s.e2e_pack_length,
                         pack_length_step=self.s.e2e_pack_length_step)
    # The same examples in the same steps, laid out two ways: the same target tokens.
    assert [float(b["weights"].sum()) for b in batches] == [
        float(b["weights"].sum()) for b in packed], "packed and padded E2E batches differ"
    save_batches(padded_path, batches)
    save_batches(packed_path, packed)
    for w in (ours, peft_w, kept):
      w.call("drop", job="random")
    args = dict(hf_dir=hf_dir, prefix_len=self.s.prefix_len)
    ours.setup("e2e", "jax_train", method="prefix", data=str(packed_path), **args)
    for w in (peft_w, kept):
      w.setup("e2e", "torch_train", method="peft", data=str(padded_path), **args)
    labels = ("ours_prefix", "peft_prefix", "peft_prefix_kept")
    info = dict(zip(labels, (r["info"] for r in wait_all([ours, peft_w, kept]))))
    self.log(f"[gpt2] E2E, {len(batches)} batches of {self.s.e2e_batch} per call")
    runs = self._measure([(label, w, "e2e") for label, w in zip(labels, (ours, peft_w, kept))])
    lengths = [int(b["mask"].sum(-1).max()) for b in batches]
    return {"info": info, "runs": runs, "longest_rows": lengths,
            "real_tokens": int(sum(b["mask"].sum() for b in batches)),
            "peft_slots": int(sum(len(b["valid"]) * n for b, n in zip(batches, lengths))),
            "packed_shapes": [list(b["inputs"].shape) for b in packed],
            "packed_slots": int(sum(b["inputs"].size for b in packed))}

  def group_decode(self) -> dict:
    w = self.worker("decode", "jax")
    args = dict(shape=self.s.llama, batch=self.s.decode_batch, src_len=self.s.decode_src,
                new_tokens=self.s.decode_new, prefix_len=self.s.prefix_len)
    w.setup("none", "decode", with_prefix=False, **args)
    w.recv()
    w.setup("kv", "decode", with_prefix=True, **args)
    info = w.recv()["info"]
    self.log(f"[decode] greedy, batch {self.s.decode_batch}, {self.s.decode_new} new tokens")
    runs = self._measure([("no_prefix", w, "none"), ("kv_prefix", w, "kv")])
    self.close(w)
    return {"info": info, "runs": runs}

  def group_gpu(self, found: dict) -> dict:
    """Our prefix and full steps in bf16 on the GPU, both shapes, and bf16 matmul FLOP/s."""
    out = {"device": found}
    for arch in ("gpt2", "llama"):
      shape = getattr(self.s, arch)
      workers = {m: self.worker(f"gpu_{arch}_ours_{m}", "jax", env=bench_gpu.GPU_ENV)
                 for m in ("prefix", "full")}
      mm = self.worker(f"gpu_{arch}_matmul", "jax", env=bench_gpu.GPU_ENV)
      for m, w in workers.items():
        w.setup("step", "jax_train", **self._train_args(
            method=m, shape=shape, dtype="bfloat16",
            steps_per_call=self.s.gpu_steps_per_call))
      mm.setup("matmul", "matmul", shape=shape, batch=self.s.batch, seq_len=self.s.seq_len,
               dtype="bfloat16", reps=10)
      info = {f"ours_{m}": r["info"] for m, r in zip(workers, wait_all(workers.values()))}
      info["matmul"] = mm.recv()["info"]
      self.log(f"[gpu {arch}] bf16 steps, batch {self.s.batch} x {self.s.seq_len}")
      runs = self._measure([(f"ours_{m}", w, "step") for m, w in workers.items()]
                           + [("matmul", mm, "matmul")])
      memory = self._memory({f"ours_{m}": w for m, w in workers.items()})
      out[arch] = {"shape": shape, "info": info, "runs": runs, "memory": memory}
      self.close(mm, *workers.values())
    return out


# ---------------------------------------------------------------------------------------------
# Raw runs -> the numbers of each section.

def _mib(memory: dict, label: str) -> dict:
  m = memory[label]
  return {"peak_rss_mib": m["peak_rss_mib"], "phase_peak_rss_mib": m.get("phase_peak_rss_mib"),
          "device_peak_mib": m.get("device_peak_mib")}


def train_section(group: dict, sizes: Sizes) -> dict:
  runs, memory, info = group["runs"], group["memory"], group["info"]
  out = {}
  for label in ("ours_prefix", "ours_full", "torch_full"):
    out[label] = {**rate_summary(runs[label]), **_mib(memory, label),
                  "trainable_params": info[label].get("trainable_params")}
  med = lambda label: out[label]["seconds"]["median"]
  faster = min(("ours_full", "torch_full"), key=med)
  out["faster_full"] = faster
  out["speedup_vs_faster_full"] = med(faster) / med("ours_prefix")
  out["speedup_vs_ours_full"] = med("ours_full") / med("ours_prefix")
  out["speedup_vs_torch_full"] = med("torch_full") / med("ours_prefix")
  out["peak_rss_ratio_vs_faster_full"] = (out["ours_prefix"]["peak_rss_mib"]
                                          / out[faster]["peak_rss_mib"])
  out["per_round_speedup_vs_faster_full"] = common.summarize(
      [a["seconds"] / b["seconds"] for a, b in zip(runs[faster], runs["ours_prefix"])])
  out["batch"] = [sizes.batch, sizes.seq_len]
  out["compile_s"] = {k: info[k].get("compile_s") for k in ("ours_prefix", "ours_full")}
  return out


def _vs_peft(runs: dict, info: dict) -> dict:
  ours, theirs = rate_summary(runs["ours_prefix"]), rate_summary(runs["peft_prefix"])
  kept = rate_summary(runs["peft_prefix_kept"])
  loss_ours = runs["ours_prefix"][0]["first_loss"]
  loss_peft = runs["peft_prefix"][0]["first_loss"]
  return {"ours": ours, "peft": theirs, "peft_kept_memory": kept,
          "tokens_per_s_ratio": ours["tokens_per_s"]["median"] / theirs["tokens_per_s"]["median"],
          "tokens_per_s_ratio_vs_peft_kept_memory":
              ours["tokens_per_s"]["median"] / kept["tokens_per_s"]["median"],
          "per_round_ratio": common.summarize(
              [(a["tokens"] / a["seconds"]) / (b["tokens"] / b["seconds"])
               for a, b in zip(runs["ours_prefix"], runs["peft_prefix"])]),
          "step1_loss_ours": loss_ours, "step1_loss_peft": loss_peft,
          "step1_loss_abs_diff": abs(loss_ours - loss_peft),
          "batch_shapes": {k: info[k].get("batch_shapes") for k in ("ours_prefix", "peft_prefix")}}


def peft_section(group: dict, sizes: Sizes) -> dict:
  random = _vs_peft(group["runs"], group["info"])
  random["peak_rss_mib"] = {k: group["memory"][k]["peak_rss_mib"]
                            for k in ("ours_prefix", "peft_prefix", "peft_prefix_kept")}
  e2e = _vs_peft(group["e2e"]["runs"], group["e2e"]["info"])
  e2e.update(batch_size=sizes.e2e_batch, batches_per_call=sizes.e2e_batches,
             counted="target tokens", pack_length=sizes.e2e_pack_length,
             pack_length_step=sizes.e2e_pack_length_step,
             **{k: group["e2e"][k] for k in ("longest_rows", "real_tokens", "peft_slots",
                                             "packed_shapes", "packed_slots")})
  return {"random": random, "e2e": e2e, "prefix_len": sizes.prefix_len}


def _achieved(shape, sizes, method, seconds, **kw) -> dict:
  flops = bench_flops.step_flops(shape, batch=sizes.batch, seq_len=sizes.seq_len,
                                 prefix_len=sizes.prefix_len, method=method, **kw)
  return {"model_flops": flops["total"], "flops_breakdown": flops,
          "achieved_flop_per_s": flops["total"] / seconds}


def flops_section(gpt2: dict, llama: dict, sizes: Sizes) -> dict:
  mm = gpt2["runs"]["matmul"]
  weighted = [r["flops"] / r["seconds"] for r in mm]
  per_shape = {name: common.median([r["per_shape"][name] for r in mm]) for name in mm[0]["per_shape"]}
  out = {"matmul_flop_per_s": common.summarize(weighted), "matmul_per_shape_flop_per_s": per_shape}
  for arch, group in (("gpt2", gpt2), ("llama", llama)):
    for label, method in (("ours_prefix", "prefix"), ("ours_full", "full")):
      secs = common.median([r["seconds"] for r in group["runs"][label]])
      entry = _achieved(group["shape"], sizes, method, secs)
      entry["step_seconds"] = secs
      entry["xla_cost_analysis_flops"] = group["info"][label].get("xla_flops")
      out[f"{arch}_{label}"] = entry
  prefix = out["gpt2_ours_prefix"]
  prefix["percent_of_matmul"] = 100 * prefix["achieved_flop_per_s"] / out["matmul_flop_per_s"]["median"]
  prefix["per_round_percent_of_matmul"] = common.summarize(
      [100 * prefix["model_flops"] / a["seconds"] / (m["flops"] / m["seconds"])
       for a, m in zip(gpt2["runs"]["ours_prefix"], mm)])
  return out


def decode_section(group: dict) -> dict:
  none, kv = rate_summary(group["runs"]["no_prefix"]), rate_summary(group["runs"]["kv_prefix"])
  return {"no_prefix": none, "kv_prefix": kv, "settings": group["info"],
          "kv_prefix_over_no_prefix": kv["tokens_per_s"]["median"] / none["tokens_per_s"]["median"]}


def gpu_section(group: dict, sizes: Sizes) -> dict:
  device = group["device"]
  peak = bench_gpu.datasheet_peak(device.get("device_kind", ""))
  out = {"device": device, "datasheet_bf16_peak_flop_per_s": peak, "dtype": "bfloat16"}
  for arch in ("gpt2", "llama"):
    g = group[arch]
    mm = common.median([r["flops"] / r["seconds"] for r in g["runs"]["matmul"]])
    entry = {"matmul_flop_per_s": mm}
    for m in ("prefix", "full"):
      label = f"ours_{m}"
      rs = rate_summary(g["runs"][label])
      ach = _achieved(g["shape"], sizes, m, rs["seconds"]["median"])
      entry[label] = {**rs, **_mib(g["memory"], label), **ach,
                      "percent_of_matmul": 100 * ach["achieved_flop_per_s"] / mm,
                      "mfu_percent": None if peak is None else
                      100 * ach["achieved_flop_per_s"] / peak}
    entry["speedup_prefix_vs_full"] = (entry["ours_full"]["seconds"]["median"]
                                       / entry["ours_prefix"]["seconds"]["median"])
    out[arch] = entry
  return out


def targets(results: dict) -> list[dict]:
  """The issue's targets (GPT-2-small shape), each with this run's measured value."""
  t, p, f = results["train"]["gpt2"], results["peft"], results["flops"]["gpt2_ours_prefix"]
  rows = [
      (f"prefix step speedup vs faster full FT ({t['faster_full']})",
       t["speedup_vs_faster_full"], ">=", 1.6, "x"),
      (f"prefix peak RSS / {t['faster_full']} peak RSS", t["peak_rss_ratio_vs_faster_full"],
       "<=", 0.5, "x"),
      ("tokens/s vs HF PEFT, random batch", p["random"]["tokens_per_s_ratio"], ">=", 1.3, "x"),
      ("tokens/s vs HF PEFT, E2E batches", p["e2e"]["tokens_per_s_ratio"], ">=", 1.5, "x"),
      ("prefix step FLOP/s, % of measured matmul", f["percent_of_matmul"], ">=", 75.0, "%"),
      ("|step-1 loss ours - PEFT| (asserted)", p["random"]["step1_loss_abs_diff"], "<=",
       PEFT_LOSS_TOLERANCE, ""),
      ("|step-1 loss ours packed - PEFT padded|, E2E (asserted)", p["e2e"]["step1_loss_abs_diff"],
       "<=", PEFT_LOSS_TOLERANCE, ""),
  ]
  return [{"name": n, "measured": v, "op": op, "target": tgt, "unit": u,
           "met": bool(v >= tgt if op == ">=" else v <= tgt)} for n, v, op, tgt, u in rows]


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="toy sizes, 1 round (smoke test)")
  parser.add_argument("--out", default="bench/results.json")
  parser.add_argument("--rounds", type=int, default=None, help="measured rounds (default 5)")
  parser.add_argument("--gpu", choices=("auto", "on", "off"), default="auto",
                      help="section 5: auto = only where JAX sees a GPU; on = run it anyway")
  parser.add_argument("--keep-workdir", action="store_true")
  args = parser.parse_args(argv)
  sizes = QUICK if args.quick else FULL
  if args.rounds:
    sizes = dataclasses.replace(sizes, rounds=args.rounds)
  start = time.perf_counter()
  machine = common.machine_info(argv)
  print(bench_report.header(machine, quick=args.quick), flush=True)
  workdir = Path(tempfile.mkdtemp(prefix="prefix_jax_bench_"))
  log = lambda msg: print(f"{time.perf_counter() - start:6.1f}s {msg}", flush=True)
  bench = Bench(sizes, workdir, log, prestart=args.quick)
  results = {"machine": machine, "command": machine["command"], "quick": args.quick,
             "settings": dataclasses.asdict(sizes)}
  try:
    gpt2 = bench.group_train("gpt2", with_peft=True)
    llama = bench.group_train("llama", with_peft=False)
    results["train"] = {"gpt2": train_section(gpt2, sizes), "llama": train_section(llama, sizes)}
    results["peft"] = peft_section(gpt2, sizes)
    results["flops"] = flops_section(gpt2, llama, sizes)
    results["decode"] = decode_section(bench.group_decode())
    found = bench_gpu.probe() if args.gpu != "off" else {}
    reason = bench_gpu.skip_reason(args.gpu, found)
    if reason:
      log(f"[gpu] skipped: {reason}")
      results["gpu"] = {"skipped": reason}
    else:
      results["gpu"] = gpu_section(bench.group_gpu(found), sizes)
  except Exception:
    log(f"worker logs kept in {workdir}")
    raise
  finally:
    bench.close()
  results["targets"] = targets(results)
  results["elapsed_s"] = time.perf_counter() - start
  out = Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=1, default=str))
  print(bench_report.tables(results), flush=True)
  print(f"\nwrote {out} ({results['elapsed_s']:.0f} s)")
  if not args.keep_workdir:
    shutil.rmtree(workdir, ignore_errors=True)
  for data in ("random", "e2e"):  # E2E: ours packed, PEFT padded, the same examples
    diff = results["peft"][data]["step1_loss_abs_diff"]
    assert diff <= PEFT_LOSS_TOLERANCE, (
        f"step-1 loss of ours and HF PEFT on {data} batches differ by {diff:.2e} > "
        f"{PEFT_LOSS_TOLERANCE} given the same weights, examples and prefix values")
  return 0


if __name__ == "__main__":
  sys.exit(main())
