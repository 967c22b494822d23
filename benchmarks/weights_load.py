"""Loading time and peak memory of the weight loaders (printed, not asserted).

  python -m benchmarks.weights_load [source ...]   (default: smollm2-135m)

Each source is loaded in a fresh subprocess so that peak RSS is its own; a shipped model is
fetched into the cache first (timed separately) so the load time excludes the download.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def measure(source: str, dtype: str = "float32") -> dict:
  """Loads `source` in this process; returns seconds, peak RSS (MiB) and the parameter count."""
  import numpy as np
  from prefix_jax.weights import load_pretrained
  rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  t0 = time.perf_counter()
  cfg, params, tok = load_pretrained(source, dtype=dtype)
  seconds = time.perf_counter() - t0
  leaves = []
  stack = [params]
  while stack:
    node = stack.pop()
    for v in node.values():
      (stack if isinstance(v, dict) else leaves).append(v)
  n = sum(int(np.prod(a.shape)) for a in leaves)
  return {"source": source, "dtype": dtype, "load_s": round(seconds, 2),
          "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
          "rss_before_mib": round(rss0), "params_m": round(n / 1e6, 1),
          "param_mib": round(sum(a.nbytes for a in leaves) / 2**20), "arch": cfg.arch,
          "vocab": tok.vocab_size if tok is not None else None}


def main(argv: list[str]) -> None:
  if argv[:1] == ["--child"]:
    print(json.dumps(measure(argv[1], argv[2])))
    return
  from prefix_jax.weights import shipped
  sources = argv or ["smollm2-135m"]
  for source in sources:
    if source in shipped.SHIPPED:
      t0 = time.perf_counter()
      cached = shipped.is_cached(source)
      shipped.fetch(source)
      print(f"{source}: fetch {'(cached) ' if cached else ''}{time.perf_counter() - t0:.2f}s")
    for dtype in ("float32", "bfloat16"):
      out = subprocess.run([sys.executable, "-m", "benchmarks.weights_load", "--child", source,
                            dtype], capture_output=True, text=True, check=True)
      r = json.loads(out.stdout.strip().splitlines()[-1])
      print(f"{source} [{dtype}]: load {r['load_s']}s, peak RSS {r['peak_rss_mib']} MiB "
            f"(imports {r['rss_before_mib']} MiB; params {r['params_m']}M = "
            f"{r['param_mib']} MiB)")


if __name__ == "__main__":
  main(sys.argv[1:])
