"""How the batcher forms batches (no model: `_collect` on its queue): a burst joins whole even
when it lasts longer than the window, a lone request waits only the window, requests still
being parsed are waited for, and `max_wait_s` bounds it all."""
import threading
import time
import types

from prefix_jax.serving.batcher import Batcher
from prefix_jax.serving.engine import Limits

ENGINE = types.SimpleNamespace(limits=Limits(max_batch=16))


def _feed(batcher, count, gap_s):
  def put():
    for i in range(count):
      time.sleep(gap_s)
      batcher._queue.put(i)
  thread = threading.Thread(target=put)
  thread.start()
  return thread


def _collect(batcher):
  start = time.monotonic()
  items, stopping = batcher._collect("first")
  return len(items), time.monotonic() - start, stopping


def test_a_burst_longer_than_the_window_forms_one_batch():
  batcher = Batcher(ENGINE, window_s=0.2, max_wait_s=5.0)
  feeder = _feed(batcher, 10, 0.05)  # 500 ms in all, 50 ms apart: each within the window
  size, _, _ = _collect(batcher)
  feeder.join()
  assert size == 11


def test_a_lone_request_waits_only_the_window_and_max_wait_caps_a_burst():
  batcher = Batcher(ENGINE, window_s=0.05, max_wait_s=5.0)
  size, waited, _ = _collect(batcher)
  assert size == 1 and 0.04 < waited < 1.0
  capped = Batcher(ENGINE, window_s=0.2, max_wait_s=0.3)
  feeder = _feed(capped, 15, 0.05)
  size, waited, _ = _collect(capped)
  feeder.join()
  assert 2 <= size <= 10 and waited < 1.0  # cut at 300 ms of a 750 ms burst


def test_requests_still_arriving_are_waited_for_within_max_wait():
  arriving = [1]
  batcher = Batcher(ENGINE, window_s=0.02, max_wait_s=5.0, arriving=lambda: arriving[0])

  def late():
    time.sleep(0.2)  # ten windows: without `arriving` the batch would have left
    batcher._queue.put("late")
    arriving[0] = 0
  thread = threading.Thread(target=late)
  thread.start()
  size, waited, _ = _collect(batcher)
  thread.join()
  assert size == 2 and waited < 1.0


def test_shutdown_ends_the_collection():
  batcher = Batcher(ENGINE, window_s=0.05)
  batcher._queue.put(None)
  assert _collect(batcher)[0::2] == (1, True)
