"""The printed form of the benchmark results: machine header, one table per section, targets."""
from __future__ import annotations


def _si(x: float | None, unit: str = "") -> str:
  if x is None:
    return "n/a"
  for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
    if abs(x) >= scale:
      return f"{x / scale:.3g} {prefix}{unit}"
  return f"{x:.3g} {unit}".rstrip()


def _table(title: str, head: list[str], rows: list[list[str]]) -> str:
  widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
  line = lambda r: "  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
  return "\n".join([f"\n{title}", line(head), line(["-" * w for w in widths])]
                   + [line(r) for r in rows])


def header(machine: dict, quick: bool) -> str:
  v = machine["versions"]
  return "\n".join([
      "prefix_jax benchmark" + (" (--quick: toy sizes, not meaningful numbers)" if quick else ""),
      f"  machine  {machine['cpu_model']}; {machine['usable_cores']} usable of "
      f"{machine['logical_cores']} logical cores; load {machine['load_avg_1m_at_start']} at start",
      f"  python {machine['python']}, jax {v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, "
      f"torch {v['torch']}, transformers {v['transformers']}, peft {v['peft']}",
      f"  command  {machine['command']}",
  ])


def _time(stats: dict) -> str:
  return f"{stats['median']:.3g} s [{stats['min']:.3g}-{stats['max']:.3g}]"


def _train_rows(sec: dict) -> list[list[str]]:
  names = {"ours_prefix": "ours, prefix (kv)", "ours_full": "ours, full FT (AdamW)",
           "torch_full": "PyTorch, full FT (AdamW)"}
  rows = []
  for label, name in names.items():
    e = sec[label]
    phase = e.get("phase_peak_rss_mib")
    rows.append([name, _time(e["seconds"]), f"{e['tokens_per_s']['median']:.4g}",
                 f"{e['peak_rss_mib']:.0f}", "n/a" if phase is None else f"{phase:.0f}",
                 f"{e['trainable_params']:,}"])
  return rows


def tables(r: dict) -> str:
  out = []
  for arch, title in (("gpt2", "GPT-2-small shape"), ("llama", "SmolLM2-135M shape")):
    sec = r["train"][arch]
    b, t = sec["batch"]
    out.append(_table(
        f"1. train step, {title}, batch {b} x {t}, fp32 (median [min-max] of "
        f"{sec['ours_prefix']['seconds']['n']} interleaved rounds)",
        ["configuration", "step time", "tokens/s", "peak RSS MiB", "train-phase peak MiB",
         "trainable"], _train_rows(sec)))
    out.append(f"  prefix speedup vs faster full FT ({sec['faster_full']}): "
               f"{sec['speedup_vs_faster_full']:.2f}x (ours full {sec['speedup_vs_ours_full']:.2f}x,"
               f" PyTorch full {sec['speedup_vs_torch_full']:.2f}x); peak RSS ratio "
               f"{sec['peak_rss_ratio_vs_faster_full']:.2f}")
  p = r["peft"]
  rows = []
  for key, name in (("random", "random batch"), ("e2e", "E2E batches (target tokens)")):
    e = p[key]
    rows.append([name, f"{e['ours']['tokens_per_s']['median']:.4g}",
                 f"{e['peft']['tokens_per_s']['median']:.4g}", f"{e['tokens_per_s_ratio']:.2f}x",
                 f"{e['peft_kept_memory']['tokens_per_s']['median']:.4g}",
                 f"{e['tokens_per_s_ratio_vs_peft_kept_memory']:.2f}x",
                 f"{e['step1_loss_ours']:.6f}", f"{e['step1_loss_peft']:.6f}",
                 f"{e['step1_loss_abs_diff']:.1e}"])
  out.append(_table(f"2. vs HF PEFT prefix-tuning (GPT-2-small shape, Lp={p['prefix_len']}, "
                    "same HF checkpoint and prefix values)",
                    ["data", "ours tok/s", "PEFT tok/s", "ratio", "PEFT kept-memory tok/s",
                     "ratio", "step-1 loss ours",
                     "step-1 loss PEFT", "|diff|"], rows))
  out.append("  kept memory: PEFT with the glibc setting our processes make "
             "(prefix_jax.runtime.keep_freed_memory)")
  e2e = p["e2e"]
  out.append(f"  E2E: batch {e2e['batch_size']}, {e2e['batches_per_call']} batches per call, "
             f"{e2e['real_tokens']} real tokens; ours packed into rows of at most "
             f"{e2e['pack_length']} (a multiple of {e2e.get('pack_length_step', 0)} per batch) "
             f"{e2e['packed_shapes']} ({e2e['packed_slots']} slots), PEFT "
             f"padded to the longest row {e2e['longest_rows']} ({e2e['peft_slots']} slots)")
  f = r["flops"]
  rows = [["matmul (model shapes, XLA dot)", "", "", _si(f["matmul_flop_per_s"]["median"], "FLOP/s"),
           "100%"]]
  for key, name in (("gpt2_ours_prefix", "GPT-2 prefix step"), ("gpt2_ours_full", "GPT-2 full FT step"),
                    ("llama_ours_prefix", "SmolLM2 prefix step"),
                    ("llama_ours_full", "SmolLM2 full FT step")):
    e = f[key]
    pct = 100 * e["achieved_flop_per_s"] / f["matmul_flop_per_s"]["median"]
    rows.append([name, _si(e["model_flops"], "FLOP"), _si(e["xla_cost_analysis_flops"], "FLOP"),
                 _si(e["achieved_flop_per_s"], "FLOP/s"), f"{pct:.0f}%"])
  out.append(_table("3. achieved FLOP/s (analytic model FLOPs / median step time)",
                    ["what", "model FLOPs", "XLA cost_analysis", "FLOP/s", "of matmul"], rows))
  d = r["decode"]
  s = d["settings"]
  out.append(_table(
      f"4. greedy decoding, SmolLM2-135M shape, batch {s['batch']}, prompt {s['src_len']}, "
      f"{s['new_tokens']} new tokens",
      ["variant", "time per batch", "tokens/s"],
      [[name, _time(d[k]["seconds"]), f"{d[k]['tokens_per_s']['median']:.4g}"]
       for k, name in (("no_prefix", "no prefix"), ("kv_prefix", f"kv prefix, Lp={s['prefix_len']}"))]))
  out.append(f"  kv prefix / no prefix: {d['kv_prefix_over_no_prefix']:.3f}")
  g = r["gpu"]
  if "skipped" in g:
    out.append(f"\n5. GPU: skipped ({g['skipped']})")
  else:
    rows = []
    for arch in ("gpt2", "llama"):
      for m in ("prefix", "full"):
        e = g[arch][f"ours_{m}"]
        rows.append([f"{arch} {m}", _time(e["seconds"]), f"{e['tokens_per_s']['median']:.4g}",
                     "n/a" if e["device_peak_mib"] is None else f"{e['device_peak_mib']:.0f}",
                     _si(e["achieved_flop_per_s"], "FLOP/s"), f"{e['percent_of_matmul']:.0f}%",
                     "n/a" if e["mfu_percent"] is None else f"{e['mfu_percent']:.1f}%"])
    out.append(_table(
        f"5. GPU {g['device'].get('device_kind')}, bf16 (datasheet peak "
        f"{_si(g['datasheet_bf16_peak_flop_per_s'], 'FLOP/s')})",
        ["config", "step time", "tokens/s", "device peak MiB", "FLOP/s", "of matmul", "MFU"], rows))
  rows = [[t["name"], f"{t['measured']:.3g}{t['unit']}", f"{t['op']} {t['target']:g}{t['unit']}",
           "met" if t["met"] else "NOT met"] for t in r["targets"]]
  out.append(_table("targets (GPT-2-small shape)", ["target", "measured", "goal", ""], rows))
  return "\n".join(out)
