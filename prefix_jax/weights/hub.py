"""Hub names (e.g. 'gpt2-medium', 'org/model'): downloaded only when the hub is reachable.

The reachability check is a TCP connection with a short deadline, run in a daemon thread so
that a hanging DNS lookup cannot block either: offline, `snapshot_download` is never called.
"""
from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path

from prefix_jax.weights.errors import OfflineError, WeightsError, one_line

HUB_HOST = "huggingface.co"
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_ALLOW = ["config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json",
          "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]


def looks_like_hub_name(source: str) -> bool:
  return bool(_NAME.match(source)) and not source.endswith((".gguf", ".bin", ".pt", ".pth",
                                                            ".safetensors", ".json"))


def hub_reachable(host: str = HUB_HOST, timeout: float = 2.0) -> bool:
  """True if a TCP connection to host:443 opens within `timeout` seconds (DNS included)."""
  if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
    return False
  result = []

  def probe():
    try:
      with socket.create_connection((host, 443), timeout=timeout):
        result.append(True)
    except OSError:
      pass

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout + 0.5)
  return bool(result)


def download(name: str) -> Path:
  """A local snapshot (safetensors + config + tokenizer only, never pickles) of a hub repo."""
  if not hub_reachable():
    raise OfflineError(f"{name}: not a local file or shipped model, and the Hugging Face hub "
                       f"({HUB_HOST}) is unreachable from here (offline); download the model "
                       "elsewhere and pass its local directory")
  try:
    from huggingface_hub import snapshot_download
  except ImportError:
    raise WeightsError(f"{name}: hub download needs the huggingface_hub package") from None
  try:
    return Path(snapshot_download(name, allow_patterns=_ALLOW))
  except Exception as e:  # hub errors (not found, gated, network) -> one line
    raise WeightsError(f"{name}: hub download failed ({type(e).__name__}: {one_line(e)})") from None
