"""The MS-COCO caption evaluation's tokenization: Stanford PTBTokenizer, then punctuation removed.

Same command and punctuation list as `pycocoevalcap.tokenizer.ptbtokenizer` (which the E2E
metrics run before METEOR, ROUGE-L and CIDEr); unlike it, the temporary file goes to the system
temp folder rather than into the installed package, and all sentences go through one JVM.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence

from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from prefix_jax.metrics import java

_PUNCTUATION = frozenset(PUNCTUATIONS)
# Java's line reader also breaks lines at these; each sentence must stay on one line.
_LINE_BREAKS = re.compile(r"[\n\r\u0085\u2028\u2029]")


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
  """Lowercased, PTB-tokenized sentences, tokens joined by single spaces, punctuation dropped.

  Note: like the COCO code, the list holds the upper-case bracket names (-LRB- ...) while the
  tokenizer emits them lowercased, so "(" survives as "-lrb-".
  """
  sentences = [_LINE_BREAKS.sub(" ", s) for s in sentences]
  fd, path = tempfile.mkstemp(prefix="ptb-", suffix=".txt")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write("\n".join(sentences))
    cmd = [java.java_binary(), "-Dfile.encoding=UTF-8", "-cp", java.jar(java.CORENLP_JAR),
           "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", path]
    proc = subprocess.run(cmd, capture_output=True, check=False)
  finally:
    os.remove(path)
  if proc.returncode != 0:
    raise RuntimeError(f"PTBTokenizer failed ({proc.returncode}): "
                       f"{proc.stderr.decode('utf-8', 'replace').strip()[-500:]}")
  lines = proc.stdout.decode("utf-8").split("\n")
  # The tokenizer ends its output with a newline unless the last sentence is empty.
  lines = lines[:len(sentences)]
  if len(lines) != len(sentences):
    raise RuntimeError(f"PTBTokenizer returned {len(lines)} lines for {len(sentences)} sentences")
  return [" ".join(w for w in line.rstrip().split(" ") if w and w not in _PUNCTUATION)
          for line in lines]
