"""XSUM summarization, decoder-only variant: configs/xsum.py's hyperparameters (the paper's,
for BART-large) with a decoder-only backbone reading `document <sep> summary`."""
import importlib.util
from pathlib import Path

from prefix_jax.train.config_base import apply_arg

_spec = importlib.util.spec_from_file_location("xsum_bart", Path(__file__).with_name("xsum.py"))
_xsum = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_xsum)


def get_config(arg=None):
  c = _xsum.paper_config()
  c.model = "smollm2-135m"
  c.prefix.init_text = "summarize:"
  c.decode.update(dict(no_repeat_ngram_size=0, ban_newlines=True))
  return apply_arg(c, arg)
