"""An OpenAI-compatible HTTP server for many prefixes on one frozen backbone.

  python -m prefix_jax.serve --model smollm2-135m --prefix e2e=RUN/prefix.safetensors \
      --prefix webnlg=RUN2/prefix.safetensors [--port 8000] [--api-key KEY]

`model` in a request names the prefix (or the backbone: the `--model` argument as given).
Requests arriving within `--batch-window-ms` of each other (up to `--max-batch`, for at most
`--batch-max-wait-ms`) are decoded together whatever their prefixes. SIGTERM or Ctrl-C stops taking
connections, finishes the requests in flight, and exits 0. See docs/serving.md.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

import uvicorn

from prefix_jax.runtime import collect_less, keep_freed_memory
from prefix_jax.serving.api import Settings, create_app
from prefix_jax.serving.engine import Limits, Request
from prefix_jax.serving.errors import PrefixLoadError, ServingError
from prefix_jax.serving.loading import build_engine, parse_prefix_args


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", required=True, help="pretrained source or tiny-<arch>")
  p.add_argument("--prefix", action="append", default=[], metavar="NAME=FILE")
  p.add_argument("--host", default="127.0.0.1")
  p.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
  p.add_argument("--api-key", default=os.environ.get("PREFIX_JAX_API_KEY"),
                 help="bearer key for every route (default $PREFIX_JAX_API_KEY); admin "
                      "routes are off without one")
  p.add_argument("--max-batch", type=int, default=16)
  p.add_argument("--batch-window-ms", type=float, default=5.0,
                 help="a batch takes requests while each follows the last within this")
  p.add_argument("--batch-max-wait-ms", type=float, default=50.0,
                 help="a batch waits at most this long after its first request")
  p.add_argument("--max-tokens", type=int, default=256, help="cap on a request's max_tokens")
  p.add_argument("--max-beams", type=int, default=8)
  p.add_argument("--max-prompt-tokens", type=int, default=1024)
  p.add_argument("--max-body-bytes", type=int, default=1 << 16)
  p.add_argument("--max-queue", type=int, default=1024, help="waiting requests before 503")
  p.add_argument("--warmup", action="append", default=[], metavar="SOURCE_LEN:MAX_TOKENS",
                 help="compile every batch-size bucket for this shape before serving")
  p.add_argument("--seed", type=int, default=0, help="of a tiny-<arch> random backbone")
  return p.parse_args(argv)


def parse_warmup(items: list[str]) -> list[tuple[int, int]]:
  out = []
  for item in items:
    src, _, n = item.partition(":")
    if not (src.isdigit() and n.isdigit() and int(src) > 0 and int(n) > 0):
      raise ServingError(f"--warmup {item!r}: expected SOURCE_LEN:MAX_TOKENS (positive ints)")
    out.append((int(src), int(n)))
  return out


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    for name in ("max_batch", "max_tokens", "max_beams", "max_prompt_tokens", "max_body_bytes",
                 "max_queue"):
      if getattr(args, name) < 1:
        raise ServingError(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.batch_window_ms, args.batch_max_wait_ms) < 0:
      raise ServingError("--batch-window-ms and --batch-max-wait-ms must be >= 0")
    limits = Limits(max_tokens=args.max_tokens, max_beams=args.max_beams,
                    max_batch=args.max_batch, max_prompt_tokens=args.max_prompt_tokens)
    warmups = parse_warmup(args.warmup)
    engine = build_engine(args.model, parse_prefix_args(args.prefix), limits, seed=args.seed)
    for source_len, max_tokens in warmups:
      engine.check(Request(engine.bank.models()[0], (0,) * source_len, max_tokens))
      engine.warm_up(source_len, max_tokens)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections queue from now on, before uvicorn starts accepting
  except (ServingError, PrefixLoadError, OSError, ValueError) as e:
    print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
    return 2
  settings = Settings(api_key=args.api_key, max_body_bytes=args.max_body_bytes,
                      window_s=args.batch_window_ms / 1000,
                      max_wait_s=args.batch_max_wait_ms / 1000, max_queue=args.max_queue)
  server = uvicorn.Server(uvicorn.Config(create_app(engine, settings), log_level="warning"))
  # uvicorn re-raises the signal that stopped it once it has shut down gracefully; a no-op
  # handler makes that a normal exit (status 0) instead of death by SIGTERM.
  signal.signal(signal.SIGTERM, lambda *_: None)
  print(f"serving {len(engine.bank.names())} prefixes on http://{args.host}:"
        f"{sock.getsockname()[1]}", flush=True)
  server.run(sockets=[sock])
  return 0


if __name__ == "__main__":
  keep_freed_memory()  # before JAX starts its threads (see prefix_jax/runtime.py)
  collect_less()  # the imports are done
  sys.exit(main())
