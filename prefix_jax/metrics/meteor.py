"""METEOR 1.5 (Denkowski & Lavie 2014), the jar that ships in the pycocoevalcap wheel.

Run as the MS-COCO evaluation (and so the E2E metrics) runs it: `-l en -norm` in `-stdio` mode, one
SCORE line per input for its sufficient statistics, then one EVAL line over all of them for the
corpus score, which aggregates the statistics rather than averaging sentence scores. The WebNLG
and DART scripts run the same jar with the same options on files (`-r` only sizes the file format).

The JVM takes a few seconds to load the paraphrase table, so one process is kept per Python
process and reused; it is closed at exit.
"""
from __future__ import annotations

import atexit
import re
import subprocess
import threading
from collections.abc import Sequence

from prefix_jax.metrics import java

# "|||" separates fields of the protocol and a newline ends a request.
_PROTOCOL_CHARS = re.compile(r"\|\|\||[\n\r\u0085\u2028\u2029]")


def _clean(text: str) -> str:
  return " ".join(_PROTOCOL_CHARS.sub(" ", text).split())


class MeteorProcess:
  """A running `meteor-1.5.jar -stdio`; thread-safe."""

  def __init__(self):
    cmd = [java.java_binary(), "-Dfile.encoding=UTF-8", "-Xmx2G", "-jar",
           java.jar(java.METEOR_JAR), "-", "-", "-stdio", "-l", "en", "-norm"]
    self._proc = subprocess.Popen(cmd, cwd=str(java.METEOR_JAR.parent), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  encoding="utf-8", bufsize=1)
    self._lock = threading.Lock()

  def _ask(self, line: str) -> str:
    self._proc.stdin.write(line + "\n")
    self._proc.stdin.flush()
    answer = self._proc.stdout.readline()
    if not answer:
      raise RuntimeError(f"METEOR exited (code {self._proc.poll()}) while scoring")
    return answer.strip()

  def corpus_score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]
                   ) -> tuple[float, list[float]]:
    """(corpus METEOR, per-input METEOR), both in [0, 1]."""
    with self._lock:
      stats = [self._ask(" ||| ".join(["SCORE", *map(_clean, refs), _clean(pred)]))
               for pred, refs in zip(predictions, references)]
      self._proc.stdin.write(" ||| ".join(["EVAL", *stats]) + "\n")
      self._proc.stdin.flush()
      per_input = [float(self._proc.stdout.readline()) for _ in stats]
      return float(self._proc.stdout.readline()), per_input

  def close(self) -> None:
    if self._proc.poll() is None:
      self._proc.stdin.close()
      try:
        self._proc.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self._proc.kill()
        self._proc.wait()


_shared: MeteorProcess | None = None
_shared_lock = threading.Lock()


def _process() -> MeteorProcess:
  global _shared
  with _shared_lock:
    if _shared is None or _shared._proc.poll() is not None:
      _shared = MeteorProcess()
      atexit.register(_shared.close)
    return _shared


def corpus_meteor(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
  """Corpus-level METEOR 1.5 in [0, 1] (see module doc)."""
  return _process().corpus_score(predictions, references)[0]
