"""Dynamic batching: requests that arrive close together are decoded together.

Handlers (on the event loop) `submit` checked requests; one worker thread takes the first
waiting request and keeps taking more while each arrives within `window_s` of the one before
(a burst of clients joins whole, a lone request waits `window_s`), up to `max_batch` and at
most `max_wait_s` after the first (longer gaps too, while requests the server has received
are still on their way to the queue: `arriving`). It splits them by search (`engine.group`)
and decodes each batch, whatever its prefixes. Each request's future gets its own completion
or its own error: a request whose prefix was removed meanwhile fails alone.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import queue
import threading
import time
from typing import Callable

from prefix_jax.serving.engine import Completion, Engine, Request, group
from prefix_jax.serving.errors import ServingError


@dataclasses.dataclass
class Stats:
  """What the server has decoded: batch sizes (a histogram) and how many batches mixed
  requests of several prefixes."""
  batches: int = 0
  requests: int = 0
  tokens: int = 0
  mixed_batches: int = 0
  batch_sizes: collections.Counter = dataclasses.field(default_factory=collections.Counter)

  def record(self, completions: list[Completion]) -> None:
    self.batches += 1
    self.requests += len(completions)
    self.tokens += sum(len(c.tokens) for c in completions)
    self.mixed_batches += completions[0].batch_prefixes > 1
    self.batch_sizes[len(completions)] += 1

  def as_dict(self) -> dict:
    return {"batches": self.batches, "requests": self.requests, "tokens": self.tokens,
            "mixed_batches": self.mixed_batches,
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}


def _resolve(loop, future: asyncio.Future, value) -> None:
  """Sets a result or exception from the worker thread (skipped if the client went away)."""
  def put():
    if not future.done():
      (future.set_exception if isinstance(value, BaseException) else future.set_result)(value)
  loop.call_soon_threadsafe(put)


class Batcher:
  """The worker thread between the HTTP handlers and the engine."""

  def __init__(self, engine: Engine, *, window_s: float = 0.005, max_wait_s: float = 0.05,
               max_queue: int = 1024, arriving: Callable[[], int] = lambda: 0):
    self.engine, self.window_s, self.max_queue = engine, window_s, max_queue
    self.max_wait_s, self.arriving = max(max_wait_s, window_s), arriving
    self.stats = Stats()
    self.in_flight = 0  # submitted and not answered yet (touched on the event loop only)
    self._queue: queue.Queue = queue.Queue()
    self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)

  def start(self) -> None:
    self._thread.start()

  def stop(self) -> None:
    """Decodes everything already submitted, then ends the worker."""
    self._queue.put(None)
    self._thread.join()

  async def submit(self, request: Request) -> Completion:
    if self._queue.qsize() >= self.max_queue:
      raise ServingError(f"server busy: {self.max_queue} requests waiting", status=503)
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    self._queue.put((request, future, loop))
    self.in_flight += 1
    try:
      return await future
    finally:
      self.in_flight -= 1

  def _collect(self, first) -> tuple[list, bool]:
    """`first` and the requests that follow it closely (see the module docstring); True at
    shutdown."""
    items, deadline = [first], time.monotonic() + self.max_wait_s
    while len(items) < self.engine.limits.max_batch:
      timeout = min(self.window_s, deadline - time.monotonic())
      try:
        item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
      except queue.Empty:
        if timeout > 0 and self.arriving():  # received, still being parsed: worth the wait
          continue
        break
      if item is None:
        return items, True
      items.append(item)
    return items, False

  def _run(self) -> None:
    stopping = False
    while not stopping:
      first = self._queue.get()
      if first is None:
        break
      items, stopping = self._collect(first)
      self._decode(items)

  def _decode(self, items: list) -> None:
    snapshot = self.engine.bank.snapshot()
    ready = []
    for item in items:
      try:
        self.engine.check(item[0], snapshot)  # the bank may have changed since submit
        ready.append(item)
      except ServingError as e:
        _resolve(item[2], item[1], e)
    for idx in group([r for r, _, _ in ready], self.engine.limits.max_batch):
      batch = [ready[i] for i in idx]
      try:
        completions = self.engine.decode([r for r, _, _ in batch], snapshot)
      except Exception as e:  # noqa: BLE001 -- reported to each waiting client, not lost
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        completions = [ServingError(f"decoding failed: {message}", status=500)] * len(batch)
      else:
        self.stats.record(completions)
      for (_, future, loop), c in zip(batch, completions):
        _resolve(loop, future, c)
