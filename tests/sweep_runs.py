"""A sweep of tiny cells for the sweep tests."""
import subprocess
import sys
from pathlib import Path

from conftest import with_xla_flags

ROOT = Path(__file__).resolve().parent.parent
# A cell of a few seconds: tiny random GPT-2, 3 steps on 8 examples, 2 decoded test rows
# scored by BLEU alone (no Java process per cell).
TINY = ("configs/e2e.py:model=tiny-gpt2,steps=3,epochs=0,batch=4,n=8,"
        "train.checkpoint_every=1,train.log_every=1,data.max_source_len=24,"
        "data.max_target_len=16,data.num_eval_loss_examples=0,decode.num_examples=2,"
        "decode.beam_size=1,decode.max_new_tokens=3,prefix.mlp_hidden=8,metrics=bleu")


def sweep(root, *extra, env=None, **kw):
  """`python -m prefix_jax.sweep` of TINY over prefix_len=2,4 x seed=0,1 into `root`, started;
  stdout and stderr together."""
  cmd = [sys.executable, "-m", "prefix_jax.sweep", f"--config={TINY}", "--grid",
         "prefix_len=2,4", "--grid", "seed=0,1", "--root", str(root), *extra]
  return subprocess.Popen(cmd, cwd=ROOT, env=with_xla_flags(env or {}), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)
