"""Where the Java programs of the MS-COCO caption evaluation live, and the `java` that runs them.

The jars ship inside the `pycocoevalcap` wheel: Meteor 1.5 with its English paraphrase table, and
Stanford CoreNLP 3.4.1 for PTB tokenization. Nothing is downloaded.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pycocoevalcap.meteor import meteor as _coco_meteor
from pycocoevalcap.tokenizer import ptbtokenizer as _coco_ptb

METEOR_JAR = Path(_coco_meteor.__file__).parent / _coco_meteor.METEOR_JAR
CORENLP_JAR = Path(_coco_ptb.__file__).parent / _coco_ptb.STANFORD_CORENLP_3_4_1_JAR


def java_binary() -> str:
  """The `java` to run: $PREFIX_JAX_JAVA if set, else the first on PATH."""
  java = os.environ.get("PREFIX_JAX_JAVA") or shutil.which("java")
  if not java:
    raise RuntimeError("METEOR and the PTB tokenizer need a Java runtime (8 or newer): install one "
                       "(e.g. apt-get install default-jre-headless) or set PREFIX_JAX_JAVA")
  return java


def jar(path: Path) -> str:
  """`path` as a string, after checking that the pycocoevalcap wheel really holds it."""
  if not path.is_file():
    raise RuntimeError(f"{path} missing: reinstall pycocoevalcap (pip install pycocoevalcap==1.2)")
  return str(path)
